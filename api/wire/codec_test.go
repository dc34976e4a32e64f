package wire

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/auditledger/ledgerd/api/ledgerv1"
)

func sampleBatch() *pb.AppendBatchRequest {
	ts := "2026-11-26T12:00:00Z"
	return &pb.AppendBatchRequest{
		Events: []*pb.Event{{
			Id:        "01890000-0000-7000-8000-000000000001",
			Timestamp: ts,
			Actor:     &pb.Actor{Id: "alice", Type: "user", Ip: "10.0.0.1", Session: "s-1"},
			Action:    &pb.Action{Type: "login", Resource: "app", ResourceId: "r-9", Result: "success"},
			Context:   &pb.Context{RequestId: "req-1", Application: "web", Environment: "prod"},
			Version:   "1.0",
		}, {
			Actor:  &pb.Actor{Id: "bob"},
			Action: &pb.Action{Type: "read", Resource: "file", Result: "failure"},
		}},
		WaitCheckpoint: true,
	}
}

func sampleMessages() []proto.Message {
	return []proto.Message{
		sampleBatch(),
		&pb.AppendRequest{Event: sampleBatch().Events[0]},
		&pb.AppendBatchResponse{Results: []*pb.AppendResult{{Index: 7, Id: "x", LeafHash: bytes.Repeat([]byte{1}, 32)}}},
		&pb.GetInclusionProofResponse{Proof: &pb.InclusionProof{Index: 5, TreeSize: 9, Hashes: [][]byte{bytes.Repeat([]byte{2}, 32)}}},
		&pb.ClusterForwardRequest{Leaves: [][]byte{[]byte("leaf-1"), []byte("leaf-2")}},
		&pb.GetEntriesRequest{StartIndex: 3, Count: 100, LeavesOnly: true},
		&pb.ClusterJoinRequest{}, // decoded by protobuf-go on a server
	}
}

// The generated code and protobuf-go produce and accept the same bytes,
// whichever side of a connection uses which.
func TestSameBytesAsProtobufGo(t *testing.T) {
	for _, c := range []*Codec{Server(), Client()} {
		for _, m := range sampleMessages() {
			data, err := c.Marshal(m)
			if err != nil {
				t.Fatalf("%T: %v", m, err)
			}
			got := data.Materialize()
			data.Free()
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			// Map order may differ between encoders: compare decoded.
			back := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(got, back); err != nil {
				t.Fatalf("%T: protobuf-go cannot read the codec's bytes: %v", m, err)
			}
			if !proto.Equal(back, m) {
				t.Errorf("%T: codec bytes decode to %v, want %v", m, back, m)
			}
			dec := m.ProtoReflect().New().Interface()
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, dec); err != nil {
				t.Fatalf("%T: codec cannot read protobuf-go's bytes: %v", m, err)
			}
			if !proto.Equal(dec, m) {
				t.Errorf("%T: codec decoded %v, want %v", m, dec, m)
			}
		}
	}
}

// The decoded message does not alias the buffer gRPC hands in: gRPC
// reuses it once Unmarshal returns.
func TestDecodedDoesNotAlias(t *testing.T) {
	raw, err := proto.Marshal(sampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	var m pb.AppendBatchRequest
	if err := Server().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &m); err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 'X'
	}
	if !proto.Equal(&m, sampleBatch()) {
		t.Fatalf("decoded message changed with the buffer: %v", &m)
	}
}

// A server keeps protobuf-go's UTF-8 check for requests it does not
// check itself.
func TestServerChecksUTF8OutsideTheHotRequests(t *testing.T) {
	// protobuf-go refuses to encode it: the bytes are built by hand.
	raw := []byte{0x0a, 3, 'n', 0xff, '1'} // field 1 (node_id), 3 bytes
	if err := Server().Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &pb.ClusterJoinRequest{}); err == nil {
		t.Fatal("server codec accepted invalid UTF-8 in a join request")
	}
}

// FuzzUnmarshal: on any input protobuf-go accepts, the codec decodes the
// same message (the generated decoder never refuses it, or protobuf-go
// decides); on any input at all, it neither panics nor hangs.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range []func() proto.Message{
			func() proto.Message { return &pb.AppendBatchRequest{} },
			func() proto.Message { return &pb.AppendRequest{} },
			func() proto.Message { return &pb.ClusterForwardRequest{} },
			func() proto.Message { return &pb.GetEntriesRequest{} },
		} {
			fast, std := mk(), mk()
			errFast := Client().Unmarshal(mem.BufferSlice{mem.SliceBuffer(bytes.Clone(data))}, fast)
			errStd := proto.UnmarshalOptions{}.Unmarshal(data, std)
			if errFast != nil {
				if errStd == nil {
					t.Fatalf("%T: codec refused what protobuf-go accepts: %v", fast, errFast)
				}
				continue
			}
			if errStd != nil {
				// The generated decoder is more lenient with malformed
				// encodings (overlong varints, broken groups, strings that
				// are not UTF-8); what it returns is still a message, and
				// the server checks its content like any other's.
				continue
			}
			// Unknown fields are ignored; the generated decoder may keep a
			// non-minimal tag's bytes differently.
			discardUnknown(fast.ProtoReflect())
			discardUnknown(std.ProtoReflect())
			if !proto.Equal(fast, std) {
				t.Fatalf("%T: decoders disagree:\n%v\n%v", fast, fast, std)
			}
		}
	})
}

// discardUnknown drops the unknown fields of m and of every message in it.
func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				discardUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				discardUnknown(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			discardUnknown(v.Message())
		}
		return true
	})
}
