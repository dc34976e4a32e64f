package ctl

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTokenKeysErase drives token, whoami, keys and erase against a real
// node with security on.
func TestTokenKeysErase(t *testing.T) {
	tn := startNode(t)
	addr := tn.n.GRPCAddr()
	as := func(token, stdin string, args ...string) result {
		return runCtl(stdin, append([]string{"--addr", addr, "--token", token}, args...)...)
	}

	var created tokenJSON
	if err := json.Unmarshal([]byte(tn.mustCtl("", "token", "create", "--role", "audit_viewer", "--name", "dash", "--expires", "30d")), &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Token, "ldg_") || created.Role != "audit_viewer" || created.ExpiresAt == "" || created.Name != "dash" {
		t.Fatalf("token create: %+v", created)
	}
	wantFailure(t, tn.ctl("", "token", "create", "--role", "root"), ExitError, "InvalidArgument", "unknown role")
	wantFailure(t, tn.ctl("", "token", "create"), ExitError, "role")

	who := as(created.Token, "", "whoami")
	if who.code != 0 || !strings.Contains(who.stdout, `"token:`+created.ID+`"`) || !strings.Contains(who.stdout, `"audit_viewer"`) {
		t.Fatalf("whoami: %v", who)
	}
	wantFailure(t, as(created.Token, "", "token", "list"), ExitError, "PermissionDenied", `"tokens"`)

	tn.mustCtl(oneLine(t, seedEvent)+"\n", "append")
	if r := as(created.Token, "", "get", "--index", "0"); r.code != 0 || !strings.Contains(r.stdout, "user-456") {
		t.Fatalf("viewer get: %v", r)
	}

	list := lines[tokenJSON](t, tn.mustCtl("", "token", "list"))
	if len(list) != 2 {
		t.Fatalf("token list: %+v", list)
	}
	for _, l := range list {
		if l.Token != "" {
			t.Fatal("token list shows a secret")
		}
	}
	tn.mustCtl("", "token", "revoke", created.ID)
	wantFailure(t, as(created.Token, "", "get", "--index", "0"), ExitError, "Unauthenticated", "revoked")
	wantFailure(t, as("", "", "get", "--index", "0"), ExitError, "Unauthenticated")

	var k1 keyJSON
	if err := json.Unmarshal([]byte(tn.mustCtl("", "keys", "rotate")), &k1); err != nil || !k1.Current || !strings.HasPrefix(k1.WrappedBy, "m") {
		t.Fatalf("keys rotate: %+v %v", k1, err)
	}
	var keys struct {
		MasterKeyID string    `json:"masterKeyId"`
		Keys        []keyJSON `json:"keys"`
	}
	if err := json.Unmarshal([]byte(tn.mustCtl("", "keys", "list")), &keys); err != nil || len(keys.Keys) != 2 || keys.Keys[1] != k1 || keys.MasterKeyID != k1.WrappedBy {
		t.Fatalf("keys list: %+v %v", keys, err)
	}

	wantFailure(t, tn.ctl("", "erase", "--subject", "user-456"), ExitError, "--reason")
	out := tn.mustCtl("user-456\n", "erase", "--subject", "-", "--reason", "GDPR request 7")
	if !strings.Contains(out, `"keysDestroyed":1`) {
		t.Fatalf("erase: %s", out)
	}
	if got := tn.mustCtl("", "get", "--index", "0"); !strings.Contains(got, `"[erased]"`) || strings.Contains(got, "user-456") {
		t.Fatalf("get after erase: %s", got)
	}
	if r := tn.ctl("", "verify-log", "--key", tn.vkey()); r.code != 0 {
		t.Fatalf("verify-log after erase: %v", r)
	}
}
