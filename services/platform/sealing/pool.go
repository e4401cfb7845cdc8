package sealing

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var randRead = rand.Read

// pool holds data keys minted ahead: each already stored, wrapped, in the
// bucket, so that a new person takes one from memory. It refills in the
// background when half spent, all the keys of a refill in one atomic batch. Keys left in it when the process stops are
// never used (their records stay, sealing nothing).
type pool struct {
	ctx  context.Context
	k    *Keyring
	size int

	mu      sync.Mutex
	ready   []poolKey
	filling bool
	err     error         // the last refill's failure, for waiters
	changed chan struct{} // closed and replaced when a refill ends
}

type poolKey struct {
	id   string
	aead cipher.AEAD
}

func newPool(ctx context.Context, k *Keyring, size int) *pool {
	// The first take fills the pool: a process that never seals (a
	// service without personal data to write) never writes keys, and its
	// NATS user needs no right to.
	return &pool{ctx: ctx, k: k, size: size, changed: make(chan struct{})}
}

// take returns a minted key, waiting for a refill when none is left.
func (p *pool) take(ctx context.Context) (poolKey, error) {
	p.mu.Lock()
	for tried := false; ; tried = true {
		if n := len(p.ready); n > 0 {
			pk := p.ready[n-1]
			p.ready = p.ready[:n-1]
			if n-1 < p.size/2 {
				p.refillLocked()
			}
			p.mu.Unlock()
			return pk, nil
		}
		if tried && p.err != nil && !p.filling {
			err := p.err
			p.mu.Unlock()
			return poolKey{}, err
		}
		p.refillLocked()
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return poolKey{}, fmt.Errorf("waiting for a person key: %w", ctx.Err())
		case <-changed:
		}
		p.mu.Lock()
	}
}

// put gives back a key taken and not used.
func (p *pool) put(pk poolKey) {
	p.mu.Lock()
	p.ready = append(p.ready, pk)
	p.mu.Unlock()
}

func (p *pool) refillLocked() {
	if p.filling {
		return
	}
	p.filling = true
	go p.refill(p.size - len(p.ready))
}

// refill mints n keys and stores them as one atomic batch (one write to
// disk for all); should the batch fail, one by one.
func (p *pool) refill(n int) {
	minted, err := p.k.mintBatch(p.ctx, n)
	var errs []error
	if err != nil {
		minted, errs = make([]poolKey, n), make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { minted[i], errs[i] = p.k.mint(p.ctx) })
		}
		wg.Wait()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = nil
	for i, pk := range minted {
		if errs != nil && errs[i] != nil {
			p.err = errs[i]
			continue
		}
		p.ready = append(p.ready, pk)
	}
	p.filling = false
	close(p.changed)
	p.changed = make(chan struct{})
}

// newKey draws a data key and its record under a new random id.
func (k *Keyring) newKey() (id string, record []byte, aead cipher.AEAD, err error) {
	raw := make([]byte, 16)
	dk := make([]byte, 32)
	nonce := make([]byte, k.kek.NonceSize())
	for _, b := range [][]byte{raw, dk, nonce} {
		if _, err := randRead(b); err != nil {
			return "", nil, nil, err
		}
	}
	id = "k" + hex.EncodeToString(raw)
	if record, err = json.Marshal(entry{Wrapped: k.kek.Seal(nonce, nonce, dk, []byte(id))}); err != nil {
		return "", nil, nil, err
	}
	aead, err = newAEAD(dk)
	return id, record, aead, err
}

// mintBatch makes n keys and stores their records in one atomic batch,
// each expected new on its subject.
func (k *Keyring) mintBatch(ctx context.Context, n int) ([]poolKey, error) {
	out := make([]poolKey, n)
	batch := make([]byte, 16)
	if _, err := randRead(batch); err != nil {
		return nil, err
	}
	batchID := hex.EncodeToString(batch)
	nc := k.js.Conn()
	for i := range n {
		id, record, aead, err := k.newKey()
		if err != nil {
			return nil, err
		}
		out[i] = poolKey{id: id, aead: aead}
		msg := &nats.Msg{Subject: "$KV." + Bucket + "." + id, Data: record, Header: nats.Header{}}
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		msg.Header.Set("Nats-Batch-Id", batchID)
		msg.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < n-1 {
			if err := nc.PublishMsg(msg); err != nil {
				return nil, err
			}
			continue
		}
		msg.Header.Set("Nats-Batch-Commit", "1")
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := nc.RequestMsgWithContext(rctx, msg)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("store person keys: %w", err)
		}
		var ack struct {
			Error *jetstream.APIError `json:"error"`
			Count int                 `json:"count"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return nil, fmt.Errorf("store person keys: %w", err)
		}
		if ack.Error != nil {
			return nil, fmt.Errorf("store person keys: %w", ack.Error)
		}
		if ack.Count != n {
			return nil, fmt.Errorf("store person keys: %d of %d stored", ack.Count, n)
		}
	}
	return out, nil
}

// mint makes a data key under a new random id and stores it wrapped.
func (k *Keyring) mint(ctx context.Context) (poolKey, error) {
	for range 3 {
		id, record, aead, err := k.newKey()
		if err != nil {
			return poolKey{}, err
		}
		if _, err := k.kv.Create(ctx, id, record); errors.Is(err, jetstream.ErrKeyExists) {
			continue // 128 random bits met another: draw again
		} else if err != nil {
			return poolKey{}, fmt.Errorf("store a person key: %w", err)
		}
		return poolKey{id: id, aead: aead}, nil
	}
	return poolKey{}, errors.New("store a person key: the id was taken three times")
}
