package webhook

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

func TestRetryAfterFailure(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		failFirst int // calls that fail before one succeeds
		wantCalls int
		wantErr   bool
	}{
		{"succeeds at once", 0, 1, false},
		{"succeeds on the second try", 1, 2, false},
		{"succeeds on the last try", 3, 4, false},
		{"fails every try", 100, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			h := retryAfterFailure(middleware.Retry{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Multiplier: 1})(
				func(*message.Message) ([]*message.Message, error) {
					calls++
					if calls <= tc.failFirst {
						return nil, errBoom
					}
					return nil, nil
				})
			_, err := h(message.NewMessage("m", nil))
			if calls != tc.wantCalls {
				t.Errorf("handler called %d times, want %d", calls, tc.wantCalls)
			}
			if gotErr := errors.Is(err, errBoom); gotErr != tc.wantErr {
				t.Errorf("err = %v, want boom: %v", err, tc.wantErr)
			}
		})
	}
}

func TestRetryAfterFailureStopsWhenTheMessageIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	h := retryAfterFailure(middleware.Retry{MaxRetries: 2, InitialInterval: time.Hour})(
		func(*message.Message) ([]*message.Message, error) {
			calls++
			cancel()
			return nil, errors.New("boom")
		})
	msg := message.NewMessage("m", nil)
	msg.SetContext(ctx)
	done := make(chan error, 1)
	go func() { _, err := h(msg); done <- err }()
	select {
	case err := <-done:
		if err == nil || calls != 1 {
			t.Fatalf("err %v after %d calls, want the handler's error after one", err, calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled message waited for its retry")
	}
}
