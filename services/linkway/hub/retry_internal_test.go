package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/sealing"
)

func TestTransientFailures(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("create stream JOURNEYS: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("bucket: %w", nats.ErrTimeout), true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("x: %w", &jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{fmt.Errorf("open: %w", sealing.ErrWrongMasterKey), false},
		{errors.New("replica name \"a.b\": want a name without '.'"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestStepRetriesWhatPassesAndStopsOnWhatDoesNot: a step failing twice
// for want of a leader succeeds on its third attempt, the failed
// attempts' contexts ended; a step failing for good fails at once.
func TestStepRetriesWhatPassesAndStopsOnWhatDoesNot(t *testing.T) {
	h := &Hub{cfg: Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	var ctxs []context.Context
	err := h.step(context.Background(), "test", func(ctx context.Context) error {
		ctxs = append(ctxs, ctx)
		if len(ctxs) < 3 {
			return &jetstream.APIError{Code: 503, ErrorCode: 10008}
		}
		return nil
	})
	if err != nil || len(ctxs) != 3 {
		t.Fatalf("err %v after %d attempts, want success on the third", err, len(ctxs))
	}
	if ctxs[0].Err() == nil || ctxs[1].Err() == nil {
		t.Error("a failed attempt's context is still alive")
	}
	if ctxs[2].Err() != nil {
		t.Error("the successful attempt's context ended")
	}
	attempts := 0
	permanent := errors.New("refused")
	if err := h.step(context.Background(), "test", func(context.Context) error { attempts++; return permanent }); !errors.Is(err, permanent) || attempts != 1 {
		t.Errorf("a permanent failure: %v after %d attempts, want it at once", err, attempts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.step(ctx, "test", func(context.Context) error { return nats.ErrTimeout }); err == nil {
		t.Error("a step retried past the end of its context")
	}
}
