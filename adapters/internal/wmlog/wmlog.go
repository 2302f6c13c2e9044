// Package wmlog hands Watermill's logs to slog without paying for levels
// that are off. Watermill's own slog adapter turns every call's fields into
// attributes before slog looks at the level, and the in-process bus and the
// router log a trace line for every message: that conversion was about a
// seventh of the relay's CPU on the in-process channel, for lines nobody
// sees.
package wmlog

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// New adapts l (slog.Default when nil, as Watermill does) for Watermill.
// Watermill's Info lines are logged at Debug: some of its pub/subs write
// one for every message.
func New(l *slog.Logger) watermill.LoggerAdapter {
	if l == nil {
		l = slog.Default()
	}
	return adapter{
		inner: watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}),
		log:   l,
	}
}

type adapter struct {
	inner watermill.LoggerAdapter
	log   *slog.Logger
}

func (a adapter) on(level slog.Level) bool { return a.log.Enabled(context.Background(), level) }

func (a adapter) Error(msg string, err error, fields watermill.LogFields) {
	a.inner.Error(msg, err, fields)
}

func (a adapter) Info(msg string, fields watermill.LogFields) {
	if a.on(slog.LevelDebug) {
		a.inner.Info(msg, fields)
	}
}

func (a adapter) Debug(msg string, fields watermill.LogFields) {
	if a.on(slog.LevelDebug) {
		a.inner.Debug(msg, fields)
	}
}

func (a adapter) Trace(msg string, fields watermill.LogFields) {
	if a.on(watermill.LevelTrace) {
		a.inner.Trace(msg, fields)
	}
}

func (a adapter) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return adapter{inner: a.inner.With(fields), log: a.log}
}
