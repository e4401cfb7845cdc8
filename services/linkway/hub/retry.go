package hub

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"linkway/services/platform/ctxwait"
	"linkway/services/platform/sealing"
)

// Start-up against a NATS cluster meets leaders being elected: a stream or
// bucket that cannot be created or read for some seconds, an API that
// times out. The hub waits that out, each step retried with a growing
// pause, instead of exiting (and being restarted, and asking again).
const (
	retryFirst = 200 * time.Millisecond
	retryMost  = 5 * time.Second
)

// step runs fn until it succeeds or fails for good (transient). fn's
// context lives on after a success (what the step starts runs until the
// hub stops); after a failure it ends, so a failed attempt leaves nothing
// running.
func (h *Hub) step(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	pause := retryFirst
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithCancel(ctx)
		err := fn(actx)
		if err == nil {
			h.mu.Lock()
			h.stepCancels = append(h.stepCancels, cancel)
			h.mu.Unlock()
			return nil
		}
		cancel()
		if ctx.Err() != nil || !transient(err) {
			return err
		}
		h.cfg.Log.Warn("start-up: NATS cannot answer yet; retrying", "step", what, "attempt", attempt,
			"pause", pause, "err", err)
		if !ctxwait.Sleep(ctx, pause) {
			return err
		}
		pause = min(2*pause, retryMost)
	}
}

// transient reports whether a JetStream failure passes by itself: no
// answer in time, no server or no leader yet, a node catching up.
func transient(err error) bool {
	if errors.Is(err, sealing.ErrWrongMasterKey) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case 10005, // no suitable peers for placement
			10006, // cluster not active
			10007, // cluster not assigned
			10008, // cluster temporarily unavailable
			10009, // not leader
			10023, // insufficient resources (a node down)
			10072, // temporary storage failed
			10118, // stream offline
			10194: // stream offline, with a reason
			return true
		}
		return apiErr.Code == http.StatusServiceUnavailable || apiErr.Code == http.StatusRequestTimeout ||
			apiErr.Code == http.StatusGatewayTimeout
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrNoServers) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// startJS is the JetStream the parties are given: until the hub has
// started, the administrative calls they make while being built (streams,
// buckets, consumers) are retried as the hub's own steps are; after, each
// call is made once, as asked.
type startJS struct {
	jetstream.JetStream
	h       *Hub
	started *atomic.Bool
}

func retried[T any](j startJS, ctx context.Context, what string, fn func(context.Context) (T, error)) (T, error) {
	if j.started.Load() {
		return fn(ctx)
	}
	var out T
	err := j.h.step(ctx, what, func(ctx context.Context) error {
		var err error
		out, err = fn(ctx)
		return err
	})
	return out, err
}

func (j startJS) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retried(j, ctx, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.JetStream.CreateStream(ctx, cfg)
	})
}

func (j startJS) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retried(j, ctx, "update stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.JetStream.UpdateStream(ctx, cfg)
	})
}

func (j startJS) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return retried(j, ctx, "create stream "+cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.JetStream.CreateOrUpdateStream(ctx, cfg)
	})
}

func (j startJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	return retried(j, ctx, "stream "+name, func(ctx context.Context) (jetstream.Stream, error) {
		return j.JetStream.Stream(ctx, name)
	})
}

func (j startJS) CreateOrUpdateConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return retried(j, ctx, "consumer of "+stream, func(ctx context.Context) (jetstream.Consumer, error) {
		return j.JetStream.CreateOrUpdateConsumer(ctx, stream, cfg)
	})
}

func (j startJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return retried(j, ctx, "bucket "+bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.JetStream.KeyValue(ctx, bucket)
	})
}

func (j startJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retried(j, ctx, "create bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.JetStream.CreateKeyValue(ctx, cfg)
	})
}

func (j startJS) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retried(j, ctx, "update bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.JetStream.UpdateKeyValue(ctx, cfg)
	})
}

func (j startJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return retried(j, ctx, "create bucket "+cfg.Bucket, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.JetStream.CreateOrUpdateKeyValue(ctx, cfg)
	})
}
