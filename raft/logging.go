package raft

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogFor returns an hclog.Logger (what hashicorp/raft and raft-wal
// take) that hands every record at or above level to log.
func hclogFor(log *slog.Logger, name string, level hclog.Level) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: name, Level: level, Output: io.Discard})
	il.RegisterSink(slogSink{log: log, level: level})
	return il
}

type slogSink struct {
	log   *slog.Logger
	level hclog.Level
}

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	if level < s.level {
		return
	}
	var l slog.Level
	switch {
	case level >= hclog.Error:
		l = slog.LevelError
	case level == hclog.Warn:
		l = slog.LevelWarn
	case level == hclog.Info:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), l) {
		return
	}
	s.log.Log(context.Background(), l, msg, append([]any{"component", name}, args...)...)
}
