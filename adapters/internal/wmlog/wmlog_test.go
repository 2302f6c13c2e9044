package wmlog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
		want  []string // lines that get through, in order
	}{
		{"info", slog.LevelInfo, []string{"level=ERROR msg=error"}},
		{"debug", slog.LevelDebug, []string{"level=ERROR msg=error", "level=DEBUG msg=info", "level=DEBUG msg=debug"}},
		{"trace", watermill.LevelTrace, []string{"level=ERROR msg=error", "level=DEBUG msg=info", "level=DEBUG msg=debug", "level=DEBUG-4 msg=trace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				}})))
			l = l.With(watermill.LogFields{"topic": "kyc.events"})
			f := watermill.LogFields{"n": 1}
			l.Error("error", errors.New("boom"), f)
			l.Info("info", f)
			l.Debug("debug", f)
			l.Trace("trace", f)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tc.want), buf.String())
			}
			for i, line := range lines {
				if !strings.HasPrefix(line, tc.want[i]) || !strings.Contains(line, "topic=kyc.events") || !strings.Contains(line, "n=1") {
					t.Errorf("line %d = %q, want it to start with %q and carry the fields", i, line, tc.want[i])
				}
			}
		})
	}
}

// A line below the level costs nothing: the bus logs one per message.
func TestOffLevelsDoNotAllocate(t *testing.T) {
	l := New(slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	f := watermill.LogFields{"message_uuid": "0190", "topic": "kyc.events"}
	if n := testing.AllocsPerRun(100, func() {
		l.Trace("sending message", f)
		l.Debug("sending message", f)
		l.Info("subscribed", f)
	}); n != 0 {
		t.Errorf("%v allocations per call below the level, want 0", n)
	}
}
