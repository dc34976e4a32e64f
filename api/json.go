package api

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/ledger"
)

// ParseEventJSON parses one event in the seed's JSON shape (camelCase
// names). Unknown fields are rejected, naming the field, so a typo never
// silently drops audit data.
func ParseEventJSON(b []byte) (*pb.Event, error) {
	var e pb.Event
	if err := (protojson.UnmarshalOptions{}).Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: event JSON: %s", ledger.ErrInvalid, cleanProtoJSONError(err))
	}
	return &e, nil
}

// cleanProtoJSONError drops protojson's unstable "proto: (line 1:2): "
// prefix and keeps the part that names the problem.
func cleanProtoJSONError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "proto:") {
		msg = msg[i+3:]
	}
	return strings.ReplaceAll(msg, "\u00a0", " ")
}

// MarshalEventJSON renders an event with the seed's camelCase names.
func MarshalEventJSON(e *pb.Event) ([]byte, error) {
	return protojson.MarshalOptions{}.Marshal(e)
}
