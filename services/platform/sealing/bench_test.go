package sealing_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	eventsv1 "linkway/proto/linkway/events/v1"
	"linkway/services/platform/journal"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/sealing"
)

// BenchmarkSealedAppend measures referrals appended through a store that
// seals personal data (a new person each: their key is made and stored),
// beside the same store without sealing, at concurrency 64, in one run.
func BenchmarkSealedAppend(b *testing.B) {
	ctx := context.Background()
	_, js := natsserver.Test(b)
	k, err := sealing.Open(ctx, js, make([]byte, 32), 1)
	if err != nil {
		b.Fatal(err)
	}
	sealed := journal.DefaultConfig()
	sealed.Sealer = k
	withKeys, err := journal.Open(ctx, js, sealed, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	plain, err := journal.Open(ctx, js, journal.DefaultConfig(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	rate := func(s *journal.Store, n int) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 64 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					id := events.NewID()
					nhs := fmt.Sprintf("9%09d", i) // a new person each time (check digit need not hold here)
					if _, err := s.Execute(ctx, id, journal.Meta{}, events.Refer{Referral: &eventsv1.ReferralReceived{SourceId: id,
						Person: &eventsv1.PersonalData{NhsNumber: nhs, GivenName: "Jane"}}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds()
	}
	n := max(b.N, 2000)
	b.ResetTimer()
	sealedRate := rate(withKeys, n)
	b.StopTimer()
	plainRate := rate(plain, n)
	b.ReportMetric(sealedRate, "sealed_appends/s")
	b.ReportMetric(plainRate, "plain_appends/s")
	b.ReportMetric(sealedRate/plainRate, "ratio")
}
