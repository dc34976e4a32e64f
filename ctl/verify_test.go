package ctl

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

// cpSize returns the tree size of the checkpoint in file path.
func cpSize(t *testing.T, path string) string {
	t.Helper()
	return strconv.FormatUint(cpSizeN(t, path), 10)
}

func cpSizeN(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := ledger.ParseCheckpointText(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// otherKey is a verifier key the node never signed with.
func otherKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(nil, "test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// flipHash flips one bit of the i-th hash of a proof's "hashes" (or its
// leafHash when i < 0), keeping the JSON well formed.
func flipHash(t *testing.T, proof string, i int) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(proof), &m); err != nil {
		t.Fatal(err)
	}
	flip := func(s string) string {
		var b []byte
		if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x10
		out, _ := json.Marshal(b)
		return strings.Trim(string(out), `"`)
	}
	if i < 0 {
		m["leafHash"] = flip(m["leafHash"].(string))
	} else {
		hs := m["hashes"].([]any)
		hs[i] = flip(hs[i].(string))
	}
	out, _ := json.Marshal(m)
	return string(out)
}

func setJSON(t *testing.T, doc, key string, v any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	out, _ := json.Marshal(m)
	return string(out)
}

func TestProveVerifyInclusion(t *testing.T) {
	tn := startNode(t)
	tn.mustCtl(ndjson("inc", 21), "append", "--wait") // the proof is to a checkpoint of all 21
	dir := t.TempDir()
	cpFile := dir + "/cp"
	proof := tn.mustCtl("", "prove", "inclusion", "--index", "5", "--checkpoint-out", cpFile)
	if !strings.HasPrefix(proof, `{"index":5,"treeSize":21,"leafHash":"`) || !strings.Contains(proof, `","hashes":["`) {
		t.Fatalf("prove inclusion output: %s", proof)
	}
	entry := writeFile(t, "entry", tn.mustCtl("", "get", "--index", "5"))
	otherEntry := writeFile(t, "other", tn.mustCtl("", "get", "--index", "6"))
	keyFile := writeFile(t, "key", tn.vkey()+"\n")
	// A proof at an explicit smaller size, and the checkpoint it needs is
	// not the saved one.
	proof10 := tn.mustCtl("", "prove", "inclusion", "--index", "5", "--size", "10")
	if !strings.HasPrefix(proof10, `{"index":5,"treeSize":10,`) {
		t.Fatalf("prove --size: %s", proof10)
	}
	// The checkpoint with a trailing blank line, as an editor may save it.
	cpText, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	cpBlank := writeFile(t, "cpblank", string(cpText)+"\n")

	tests := []struct {
		name  string
		proof string
		args  []string
		code  int
		want  string
	}{
		{"valid", proof, []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 0, ""},
		{"valid key file", proof, []string{"--key", keyFile, "--checkpoint", cpFile, "--origin", "test.example/ledger"}, 0, ""},
		{"valid with entry", proof, []string{"--key", tn.vkey(), "--checkpoint", cpFile, "--entry", entry}, 0, ""},
		{"checkpoint with trailing blank line", proof, []string{"--key", tn.vkey(), "--checkpoint", cpBlank}, 0, ""},
		{"tampered proof hash", flipHash(t, proof, 0), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "root mismatch"},
		{"tampered last proof hash", flipHash(t, proof, 4), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "root mismatch"},
		{"tampered leaf hash", flipHash(t, proof, -1), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "root mismatch"},
		{"other index", setJSON(t, proof, "index", 4), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "verification failed"},
		{"wrong key", proof, []string{"--key", otherKey(t), "--checkpoint", cpFile}, 1, "checkpoint signature"},
		{"wrong origin", proof, []string{"--key", tn.vkey(), "--checkpoint", cpFile, "--origin", "elsewhere"}, 1, "origin"},
		{"wrong size", proof10, []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "tree size 10"},
		{"size lie", setJSON(t, proof10, "treeSize", 21), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 1, "verification failed"},
		{"other entry", proof, []string{"--key", tn.vkey(), "--checkpoint", cpFile, "--entry", otherEntry}, 1, "index 6"},
		{"no key", proof, []string{"--checkpoint", cpFile}, 2, "--key is required"},
		{"bad key", proof, []string{"--key", "nonsense", "--checkpoint", cpFile}, 2, "neither a verifier key"},
		{"no checkpoint", proof, []string{"--key", tn.vkey()}, 2, "--checkpoint is required"},
		{"missing checkpoint file", proof, []string{"--key", tn.vkey(), "--checkpoint", dir + "/nope"}, 2, "no such file"},
		{"not a checkpoint", proof, []string{"--key", tn.vkey(), "--checkpoint", keyFile}, 1, "checkpoint"},
		{"malformed JSON", "{", []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 2, "proof"},
		{"missing field", `{"index":5,"leafHash":"AA==","hashes":[]}`, []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 2, "treeSize"},
		{"short hash", setJSON(t, proof, "hashes", []string{"AAAA"}), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 2, "hashes[0]"},
		{"bad base64", setJSON(t, proof, "leafHash", "!!"), []string{"--key", tn.vkey(), "--checkpoint", cpFile}, 2, "proof"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCtl(tc.proof, append([]string{"verify", "inclusion"}, tc.args...)...)
			if tc.code == 0 {
				if r.code != 0 || !strings.HasPrefix(r.stdout, "verified: entry 5 ") {
					t.Fatalf("want valid: %v", r)
				}
				return
			}
			wantFailure(t, r, tc.code, tc.want)
		})
	}

	// --proof FILE works as well as stdin.
	if r := runCtl("", "verify", "inclusion", "--proof", writeFile(t, "proof", proof), "--key", tn.vkey(), "--checkpoint", cpFile); r.code != 0 {
		t.Fatal(r)
	}
}

func TestProveVerifyConsistency(t *testing.T) {
	tn := startNode(t)
	// Sizes are read from the checkpoints: the node self-audits reads,
	// so the log grows while the test reads it.
	dir := t.TempDir()
	oldCP, newCP := dir+"/old", dir+"/new"
	tn.mustCtl(ndjson("a", 13), "append", "--wait", "--checkpoint-out", oldCP)
	from := cpSize(t, oldCP)
	// --wait: the next command proves to the newest checkpoint, which may
	// be signed a moment after a plain append returns.
	tn.mustCtl(ndjson("b", 29), "append", "--wait")
	proof := tn.mustCtl("", "prove", "consistency", "--from", from, "--checkpoint-out", newCP)
	to := cpSize(t, newCP)
	if !strings.HasPrefix(proof, `{"fromSize":`+from+`,"toSize":`+to+`,"hashes":["`) || cpSizeN(t, newCP) < 42 {
		t.Fatalf("prove consistency output: %s (checkpoint size %s)", proof, to)
	}
	// An explicit --to.
	proof20 := tn.mustCtl("", "prove", "consistency", "--from", from, "--to", "20")
	if !strings.HasPrefix(proof20, `{"fromSize":`+from+`,"toSize":20,`) {
		t.Fatalf("prove consistency --to: %s", proof20)
	}
	same := tn.mustCtl("", "prove", "consistency", "--from", to, "--to", to)
	if same != `{"fromSize":`+to+`,"toSize":`+to+`,"hashes":[]}`+"\n" {
		t.Fatalf("empty proof: %s", same)
	}

	key := tn.vkey()
	tests := []struct {
		name     string
		proof    string
		old, new string
		key      string
		code     int
		want     string
	}{
		{"valid", proof, oldCP, newCP, key, 0, ""},
		{"equal sizes", same, newCP, newCP, key, 0, ""},
		{"swapped checkpoints", proof, newCP, oldCP, key, 1, "verification failed"},
		{"tampered hash", flipHash(t, proof, 0), oldCP, newCP, key, 1, "root mismatch"},
		{"tampered last hash", flipHash(t, proof, len(lines[consistencyJSON](t, proof)[0].Hashes)-1), oldCP, newCP, key, 1, "root mismatch"},
		{"wrong key", proof, oldCP, newCP, otherKey(t), 1, "checkpoint signature"},
		{"wrong size", proof20, oldCP, newCP, key, 1, "from size " + from + " to 20"},
		{"size lie", setJSON(t, proof20, "toSize", json.Number(to)), oldCP, newCP, key, 1, "verification failed"},
		{"missing field", `{"fromSize":13,"hashes":[]}`, oldCP, newCP, key, 2, "toSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCtl(tc.proof, "verify", "consistency", "--key", tc.key, "--old", tc.old, "--new", tc.new)
			if tc.code == 0 {
				if r.code != 0 || !strings.HasPrefix(r.stdout, "verified: ") {
					t.Fatalf("want valid: %v", r)
				}
				return
			}
			wantFailure(t, r, tc.code, tc.want)
		})
	}
	wantFailure(t, runCtl(proof, "verify", "consistency", "--key", key, "--old", oldCP), 2, "--old and --new")
}
