package ctl

import (
	"strings"
	"testing"
)

// TestBadInput: every mistake is one "ledgerctl: " line on stderr and a
// non-zero exit, and nothing is appended.
func TestBadInput(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("x", 3), "append")
	seed := oneLine(t, seedEvent)

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no command", "", nil, "missing command"},
		{"unknown command", "", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"misspelt command", "", []string{"chekpoint"}, `unknown command "chekpoint"`},
		{"unknown flag", "", []string{"get", "--bogus"}, "unknown flag: --bogus"},
		{"stray argument", "", []string{"checkpoint", "extra"}, `unknown command "extra"`},
		{"bad number", "", []string{"get", "--index", "x"}, `invalid argument "x" for "--index"`},
		{"negative number", "", []string{"get", "--index", "-1"}, `"--index"`},
		{"get without key", "", []string{"get"}, "exactly one of --index and --id"},
		{"get with both keys", "", []string{"get", "--index", "1", "--id", "x"}, "exactly one of --index and --id"},
		{"get unknown index", "", []string{"get", "--index", "99999"}, "NotFound: "},
		{"get unknown id", "", []string{"get", "--id", "nope"}, "NotFound: "},
		{"prove without index", "", []string{"prove", "inclusion"}, "--index is required"},
		{"prove index past size", "", []string{"prove", "inclusion", "--index", "99999"}, "NotFound: "},
		{"prove size past tree", "", []string{"prove", "inclusion", "--index", "0", "--size", "99999"}, "InvalidArgument: "},
		{"prove without subcommand", "", []string{"prove"}, "missing subcommand"},
		{"prove unknown subcommand", "", []string{"prove", "everything"}, `unknown command "everything"`},
		{"consistency without from", "", []string{"prove", "consistency"}, "--from is required"},
		{"consistency past tree", "", []string{"prove", "consistency", "--from", "1", "--to", "99999"}, "InvalidArgument: "},
		{"consistency backwards", "", []string{"prove", "consistency", "--from", "3", "--to", "2"}, "InvalidArgument: "},
		{"checkpoint-out with size", "", []string{"prove", "inclusion", "--index", "0", "--size", "2", "--checkpoint-out", "f"}, "omit --size"},
		{"verify without subcommand", "", []string{"verify"}, "missing subcommand"},
		{"verify two stdins", "", []string{"verify", "inclusion", "--key", "k", "--checkpoint", "-"}, "only one input"},
		{"verify empty proof", "", []string{"verify", "inclusion", "--key", "k", "--checkpoint", "cp"}, "proof: EOF"},
		{"event not JSON", "", []string{"append", "--event", "{"}, "--event: event JSON: "},
		{"event unknown field", "", []string{"append", "--event", `{"actor":{"id":"u"},"colour":"red"}`}, `unknown field "colour"`},
		{"event missing field", "", []string{"append", "--event", `{"actor":{"id":"u"}}`}, "InvalidArgument: "},
		{"event bad result", "", []string{"append", "--event", strings.Replace(seed, `"success"`, `"maybe"`, 1)}, "action.result"},
		{"event bad timestamp", "", []string{"append", "--event", strings.Replace(seed, "2024-01-15T10:30:00.000Z", "yesterday", 1)}, "timestamp"},
		{"event too large", "", []string{"append", "--event", strings.Replace(seed, `"1.0.0"`, `"`+strings.Repeat("v", 70<<10)+`"`, 1)}, "ResourceExhausted: "},
		{"stdin unknown field", `{"actr":{}}` + "\n", []string{"append"}, `stdin line 1: event JSON: unknown field "actr"`},
		{"stdin bad line in the middle", ndjson("y", 2) + "not json\n" + ndjson("z", 2), []string{"append"}, "stdin line 3: "},
		{"stdin invalid event", `{"actor":{"id":"u"},"action":{"type":"t","resource":"r","result":"nope"}}` + "\n", []string{"append"}, "InvalidArgument: "},
		{"batch size", ndjson("b", 1), []string{"append", "--batch-size", "0"}, "--batch-size"},
		{"checkpoint-out without wait", "", []string{"append", "--event", seed, "--checkpoint-out", "f"}, "needs --wait"},
		{"page size", "", []string{"verify-log", "--page-size", "5000"}, "--page-size"},
		{"verify-log bad key", "", []string{"verify-log", "--key", "nonsense"}, "neither a verifier key"},
		{"verify-log missing since", "", []string{"verify-log", "--since", "/nonexistent/cp"}, "no such file"},
		{"verify-log missing hmac key", "", []string{"verify-log", "--hmac-key", "/nonexistent/k"}, "--hmac-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantFailure(t, tn.ctl(tc.stdin, tc.args...), 2, tc.want)
		})
	}

	// Nothing of the above was appended except the two events before the
	// bad line in the middle, which the contract says are in.
	r := tn.ctl("", "get", "--id", "y-1")
	if r.code != 0 {
		t.Fatalf("events before the bad line: %v", r)
	}
	for _, id := range []string{"z-0", "u", "evt-123"} {
		if r := tn.ctl("", "get", "--id", id); r.code != 2 {
			t.Fatalf("%s was appended: %v", id, r)
		}
	}

	// Nothing listening.
	wantFailure(t, runCtl("", "--addr", "127.0.0.1:1", "checkpoint"), 2, "ledgerctl: Unavailable: ")
	// Unknown global flag value.
	wantFailure(t, runCtl("", "--timeout", "soon", "checkpoint"), 2, `invalid argument "soon"`)
}
