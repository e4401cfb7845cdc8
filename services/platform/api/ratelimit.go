package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxBody bounds the body of every request, whatever the route.
const MaxBody = 1 << 20

// RateLimit is the request rate allowed to one API key.
type RateLimit struct {
	Rate  float64 // requests per second; 0 means no limit
	Burst int
}

// DefaultRateLimit is generous for a GP system or a web page, and stops a
// runaway client from starving everyone else.
var DefaultRateLimit = RateLimit{Rate: 50, Burst: 200}

// rateLimits holds one token bucket per key. Keys are few (one or a few
// per organisation), so the map stays small.
type rateLimits struct {
	limit RateLimit
	mu    sync.Mutex
	byKey map[string]*rate.Limiter
}

func newRateLimits(l RateLimit) *rateLimits {
	return &rateLimits{limit: l, byKey: map[string]*rate.Limiter{}}
}

// allow takes a token for p's key, or says how long until one is free.
func (l *rateLimits) allow(p Principal) (time.Duration, bool) {
	if l.limit.Rate <= 0 {
		return 0, true
	}
	id := p.KeyID
	if id == "" {
		id = string(p.Kind) + ":" + p.OrgID
	}
	l.mu.Lock()
	lim, ok := l.byKey[id]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)
		l.byKey[id] = lim
	}
	l.mu.Unlock()
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return d, false
	}
	return 0, true
}
