// Package sinks builds the feed's sinks from the "sinks" section of the
// ledgerd config file. It is the one place that knows every sink type;
// node embeds Config and calls Build, then hands the specs to
// feed.NewManager.
//
// Example (JSON, camelCase, unknown keys rejected):
//
//	"sinks": {
//	  "kafka": [{"name": "siem", "brokers": ["kafka1:9092"], "topic": "audit-events",
//	             "compression": "zstd", "sasl": {"mechanism": "scram-sha-512",
//	             "username": "ledgerd", "password": {"file": "/etc/ledgerd/kafka.pw"}}}],
//	  "elasticsearch": [{"name": "es", "urls": ["https://es:9200"], "index": "audit",
//	                     "apiKey": {"env": "ES_API_KEY"}}],
//	  "splunk": [{"name": "hec", "url": "https://splunk:8088", "token": {"env": "HEC_TOKEN"}, "ack": true}],
//	  "webhook": [{"name": "soc", "url": "https://soc.example/hook", "secret": {"file": "/etc/ledgerd/hook.key"},
//	               "alertAfter": "5m", "deadLetterFile": "/var/lib/ledgerd/soc.dead.ndjson"}]
//	}
//
// Every entry takes the delivery fields of feed.Delivery (name, disabled,
// batchSize, batchWait, startFrom, timeout, minBackoff, maxBackoff,
// alertAfter, deadLetterFile, includeLeaf) beside its own.
package sinks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/auditledger/ledgerd/feed"
	"github.com/auditledger/ledgerd/feed/elastic"
	"github.com/auditledger/ledgerd/feed/kafka"
	"github.com/auditledger/ledgerd/feed/splunk"
	"github.com/auditledger/ledgerd/feed/webhook"
)

// Config is the sinks section. Each list may be empty; sinks run only
// when at least one entry is present and not disabled.
type Config struct {
	Kafka         []kafka.Config   `json:"kafka,omitempty"`
	Elasticsearch []elastic.Config `json:"elasticsearch,omitempty"`
	Splunk        []splunk.Config  `json:"splunk,omitempty"`
	Webhook       []webhook.Config `json:"webhook,omitempty"`
}

// Decode reads a sinks section on its own, rejecting unknown keys.
func Decode(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: sinks: %v", feed.ErrConfig, err)
	}
	return c, c.Validate()
}

// Validate checks every entry and that names are unique. It reads no
// secret and connects nowhere.
func (c Config) Validate() error {
	names := map[string]bool{}
	check := func(d feed.Delivery, err error) error {
		if err != nil {
			return err
		}
		if names[d.Name] {
			return fmt.Errorf("%w: two sinks named %q", feed.ErrConfig, d.Name)
		}
		names[d.Name] = true
		return nil
	}
	for _, s := range c.Kafka {
		if err := check(s.Delivery, s.Validate()); err != nil {
			return err
		}
	}
	for _, s := range c.Elasticsearch {
		if err := check(s.Delivery, s.Validate()); err != nil {
			return err
		}
	}
	for _, s := range c.Splunk {
		if err := check(s.Delivery, s.Validate()); err != nil {
			return err
		}
	}
	for _, s := range c.Webhook {
		if err := check(s.Delivery, s.Validate()); err != nil {
			return err
		}
	}
	return nil
}

// Build creates the enabled sinks (reading their secrets) and returns
// them as specs for feed.NewManager, which closes them. On error the
// sinks already built are closed.
func (c Config) Build() (specs []feed.SinkSpec, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, s := range specs {
				if s.Sink != nil {
					s.Sink.Close()
				}
			}
			specs = nil
		}
	}()
	add := func(typ string, d feed.Delivery, build func() (feed.Sink, error)) error {
		if d.Disabled {
			specs = append(specs, feed.SinkSpec{Type: typ, Delivery: d})
			return nil
		}
		s, err := build()
		if err != nil {
			return err
		}
		specs = append(specs, feed.SinkSpec{Type: typ, Delivery: d, Sink: s})
		return nil
	}
	var errs []error
	for _, s := range c.Kafka {
		errs = append(errs, add(kafka.Type, s.Delivery, func() (feed.Sink, error) { return kafka.New(s) }))
	}
	for _, s := range c.Elasticsearch {
		errs = append(errs, add(elastic.Type, s.Delivery, func() (feed.Sink, error) { return elastic.New(s) }))
	}
	for _, s := range c.Splunk {
		errs = append(errs, add(splunk.Type, s.Delivery, func() (feed.Sink, error) { return splunk.New(s) }))
	}
	for _, s := range c.Webhook {
		errs = append(errs, add(webhook.Type, s.Delivery, func() (feed.Sink, error) { return webhook.New(s) }))
	}
	return specs, errors.Join(errs...)
}
