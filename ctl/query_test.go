package ctl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestQuery(t *testing.T) {
	tn := startNode(t)
	if r := tn.ctl(ndjson("q", 70), "append"); r.code != 0 {
		t.Fatal(r)
	}
	// One page as JSON, then the next with its cursor.
	r := tn.ctl("", "query", "--actor", "user-3", "--since", "1h", "--limit", "6", "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	var p queryPage
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err, r)
	}
	if len(p.Entries) != 6 || p.Total != 10 || !p.HasMore || p.Entries[0].Index != 3 || p.Page != 1 {
		t.Fatalf("page 1: %+v", p)
	}
	r = tn.ctl("", "query", "--actor", "user-3", "--since", "1h", "--limit", "6", "--json", "--cursor", p.NextCursor)
	// --since moves with the clock, so the cursor belongs to another query.
	if r.code == 0 || !strings.Contains(r.stderr, "cursor") {
		t.Fatalf("cursor with a moved --since: %v", r)
	}
	r = tn.ctl("", "query", "--actor", "user-3", "--limit", "6", "--json")
	json.Unmarshal([]byte(r.stdout), &p)
	r = tn.ctl("", "query", "--actor", "user-3", "--limit", "6", "--json", "--cursor", p.NextCursor)
	var p2 queryPage
	if err := json.Unmarshal([]byte(r.stdout), &p2); err != nil || len(p2.Entries) != 4 || p2.HasMore || p2.Page != 2 || p2.Entries[0].Index != 45 {
		t.Fatalf("page 2: %+v %v %v", p2, err, r)
	}
	// Everything as NDJSON, in the shape of get, newest first.
	r = tn.ctl("", "query", "--actor", "user-3", "--resource", "document", "--ndjson", "--desc")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 10 || !strings.Contains(lines[0], `"index":66`) || !strings.Contains(lines[0], `"leaf":`) {
		t.Fatalf("ndjson: %v", r)
	}
	// The table for people; its footer says how to go on.
	r = tn.ctl("", "query", "--result", "success", "--limit", "2", "--since", "1h")
	if r.code != 0 || !strings.Contains(r.stdout, "INDEX") || !strings.Contains(r.stdout, "2 shown, 70 in all") {
		t.Fatalf("table: %v", r)
	}
	next := strings.Fields(r.stdout[strings.Index(r.stdout, "--from"):])
	if r = tn.ctl("", "query", "--result", "success", "--limit", "2", next[0], next[1], next[2], next[3]); r.code != 0 || !strings.Contains(r.stdout, "(page 2)") {
		t.Fatalf("page 2 from the table's hint %v: %v", next, r)
	}
	for _, bad := range [][]string{
		{"query", "--json", "--ndjson"},
		{"query", "--from", "yesterday"},
		{"query", "--limit", "5000"},
		{"query", "--since", "1h", "--from", "2024-01-01T00:00:00Z"},
	} {
		if r := tn.ctl("", bad...); r.code != 2 || r.stderr == "" {
			t.Errorf("%v: %v", bad, r)
		}
	}
}
