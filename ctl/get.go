package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
	"github.com/auditledger/ledgerd/merkle"
)

func newGetCmd(g *globals) *cobra.Command {
	var (
		index uint64
		id    string
	)
	cmd := &cobra.Command{
		Use:   "get (--index N | --id ID)",
		Short: "Print one entry: its leaf bytes and decoded event",
		Long: `Print one entry as one JSON line:
  {"index":N,"leaf":"<base64 leaf bytes>","event":{…},"leafHash":"…",
   "receivedAt":"…","keyId":"…","signature":"…"}
The leaf is exactly what the tree commits to (leafHash = SHA-256(0x00 || leaf),
computed here from the leaf); the event is its decoded form (protojson,
camelCase names). "verify inclusion --entry FILE" ties a proof to this output.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			byIndex, byID := cmd.Flags().Changed("index"), cmd.Flags().Changed("id")
			if byIndex == byID {
				return errors.New("give exactly one of --index and --id")
			}
			req := &pb.GetEntryRequest{Key: &pb.GetEntryRequest_Index{Index: index}}
			if byID {
				if id == "" {
					return errors.New("--id must not be empty")
				}
				req.Key = &pb.GetEntryRequest_Id{Id: id}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			resp, err := c.GetEntry(cmd.Context(), req)
			if err != nil {
				return err
			}
			out, err := entryOut(resp.GetEntry())
			if err != nil {
				return err
			}
			return g.printJSON(out)
		},
	}
	cmd.Flags().Uint64Var(&index, "index", 0, "entry index (0-based)")
	cmd.Flags().StringVar(&id, "id", "", "event id")
	return cmd
}

// entryOut renders an entry in get's output shape.
func entryOut(e *pb.Entry) (*entryJSON, error) {
	if e == nil {
		return nil, errors.New("server returned no entry")
	}
	lh := merkle.LeafHash(e.Leaf)
	if len(e.LeafHash) > 0 && !bytes.Equal(e.LeafHash, lh[:]) {
		return nil, fmt.Errorf("%w: entry %d: server's leafHash differs from the hash of the leaf it sent", errVerify, e.Index)
	}
	ev := json.RawMessage("null")
	if e.Event != nil {
		b, err := protojson.Marshal(e.Event)
		if err != nil {
			return nil, fmt.Errorf("entry %d: render event: %w", e.Index, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, fmt.Errorf("entry %d: render event: %w", e.Index, err)
		}
		ev = buf.Bytes()
	}
	return &entryJSON{Index: e.Index, Leaf: e.Leaf, Event: ev, LeafHash: lh[:], ReceivedAt: e.ReceivedAt, KeyID: e.KeyId, Signature: e.Signature}, nil
}
