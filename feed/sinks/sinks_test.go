package sinks_test

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/sinks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDecode(t *testing.T) {
	t.Setenv("HOOK_SECRET", "0123456789abcdef0123")
	t.Setenv("HEC_TOKEN", "tok")
	tests := []struct {
		name    string
		json    string
		sinks   int
		wantErr bool
	}{
		{"empty", `{}`, 0, false},
		{"all four", `{
			"kafka": [{"name": "k", "brokers": ["127.0.0.1:9092"], "topic": "audit", "compression": "zstd", "batchSize": 1000, "linger": "2ms"}],
			"elasticsearch": [{"name": "es", "urls": ["http://127.0.0.1:9200"], "index": "audit", "alertAfter": "5m"}],
			"splunk": [{"name": "hec", "url": "http://127.0.0.1:8088", "token": {"env": "HEC_TOKEN"}, "ack": true, "ackPoll": "200ms"}],
			"webhook": [{"name": "hook", "url": "http://127.0.0.1:1/x", "secret": {"env": "HOOK_SECRET"}, "headers": {"X-Tenant": "a"}, "deadLetterFile": "/tmp/x"}]
		}`, 4, false},
		{"disabled sink needs no secret", `{"webhook": [{"name": "hook", "url": "http://h/x", "secret": {"env": "UNSET_LEDGERD_VAR"}, "disabled": true}]}`, 1, false},
		{"unknown key", `{"kafka": [{"name": "k", "brokers": ["b"], "topic": "t", "acks": 1}]}`, 0, true},
		{"unknown section", `{"syslog": []}`, 0, true},
		{"bad duration", `{"webhook": [{"name": "h", "url": "http://h", "secret": {"env": "HOOK_SECRET"}, "timeout": 5}]}`, 0, true},
		{"duplicate names", `{"kafka": [{"name": "x", "brokers": ["b"], "topic": "t"}], "webhook": [{"name": "x", "url": "http://h", "secret": {"env": "HOOK_SECRET"}}]}`, 0, true},
		{"missing secret", `{"webhook": [{"name": "h", "url": "http://h", "secret": {"env": "UNSET_LEDGERD_VAR"}}]}`, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sinks.Decode([]byte(tc.json))
			var specs []feed.SinkSpec
			if err == nil {
				specs, err = c.Build()
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, feed.ErrConfig) {
					t.Errorf("error %v does not wrap feed.ErrConfig", err)
				}
				return
			}
			if len(specs) != tc.sinks {
				t.Fatalf("%d sinks, want %d", len(specs), tc.sinks)
			}
			for _, s := range specs {
				if s.Sink != nil {
					s.Sink.Close()
				}
			}
		})
	}
}
