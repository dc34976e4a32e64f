// Package wire is the gRPC codec of ledgerd's servers and clients: the
// protobuf wire format, encoded and decoded by the code protoc-gen-go-vtproto
// generates next to each message (api/ledgerv1/*_vtproto.pb.go) instead of
// protobuf-go's reflection. The bytes on the wire are the same, so either
// side may use the standard codec.
//
// Why: decoding an AppendBatch of 1000 events with protobuf-go took ~12% of
// the server's CPU (2-core machine, `ledgerctl bench --workload
// append-batch`); the generated decoder does the same work without
// reflection. Marshalling responses is the same story on the way out.
//
// Input that protobuf-go accepts decodes to the same message (when the
// generated decoder refuses something, protobuf-go decides; fuzzed). The
// generated decoder is more lenient with malformed input: overlong
// varints, broken groups in unknown fields, and proto3 strings that are not
// UTF-8, which protobuf-go refuses and it does not check. A server
// therefore decodes with it only the requests whose strings are checked
// after decoding (ledger.Event.Validate checks every event field) or that
// carry none that matter; every other request goes through protobuf-go as
// before. A client decodes the server's answers, which the server built
// from checked data, with it.
//
//	grpc.NewServer(grpc.ForceServerCodecV2(wire.Server()), ...)
//	grpc.NewClient(addr, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(wire.Client())), ...)
package wire

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the fallback codec
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

// Name is the codec's content-subtype: the same as gRPC's protobuf codec,
// because the encoding is the same.
const Name = "proto"

// vtMessage is what protoc-gen-go-vtproto generates for every message.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// Codec implements encoding.CodecV2.
type Codec struct {
	fallback encoding.CodecV2
	// decode says whether a message may be decoded with the generated
	// decoder; nil means every message.
	decode func(any) bool
}

// Server returns the codec for ledgerd's gRPC servers: generated code for
// every answer and for the requests listed in serverDecodes.
func Server() *Codec { return &Codec{fallback: encoding.GetCodecV2(Name), decode: serverDecodes} }

// Client returns the codec for clients of ledgerd (ledgerctl, the bench
// harness, cluster peers): generated code both ways.
func Client() *Codec { return &Codec{fallback: encoding.GetCodecV2(Name)} }

// serverDecodes lists the requests a server decodes with generated code:
// the hot ones whose strings are checked after decoding (events by
// ledger.Event.Validate, forwarded leaves by ledger.LeafID and the
// leader's store) or that hold only numbers and bytes.
func serverDecodes(v any) bool {
	switch v.(type) {
	case *pb.AppendRequest, *pb.AppendBatchRequest,
		*pb.GetEntryRequest, *pb.GetEntriesRequest,
		*pb.GetInclusionProofRequest, *pb.GetConsistencyProofRequest,
		*pb.GetCheckpointRequest,
		*pb.ClusterForwardRequest:
		return true
	}
	return false
}

// Name implements encoding.CodecV2.
func (c *Codec) Name() string { return Name }

// Marshal implements encoding.CodecV2.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, fmt.Errorf("wire: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("wire: marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal implements encoding.CodecV2. The decoded message copies what
// it keeps: it never aliases data, which gRPC reuses.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(vtMessage)
	if !ok || (c.decode != nil && !c.decode(v)) {
		return c.fallback.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if err := m.UnmarshalVT(buf.ReadOnlyData()); err != nil {
		// The generated decoder refuses a known field sent with another
		// wire type; protobuf-go keeps it as an unknown field. Let
		// protobuf-go decide, so that both codecs accept the same input.
		if r, ok := v.(proto.Message); ok {
			proto.Reset(r)
		}
		return c.fallback.Unmarshal(mem.BufferSlice{buf}, v)
	}
	return nil
}
