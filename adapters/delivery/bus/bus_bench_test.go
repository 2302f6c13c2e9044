package bus_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/pgtest"
)

// The relay's shape: one publisher per partition lane, batches of 256.
// One benchmark op is publishers × benchBatchesPerOp batches, enough that
// `make bench`'s -benchtime 1x still measures something.
const (
	benchPublishers   = 8
	benchBatchSize    = 256
	benchBatchesPerOp = 10
	benchCustomers    = 1000 // partitions per lane
)

// BenchmarkPublish reports msgs/s published by 8 concurrent publishers in
// batches of 256, each message returned from Publish only once accepted:
// memory with a subscriber acking everything (without one Publish drops
// messages and measures nothing), NATS on an in-process server with file
// storage, PostgreSQL on a throwaway server with fsync on.
func BenchmarkPublish(b *testing.B) {
	b.Run(bus.KindMemory, func(b *testing.B) {
		bs := openBench(b, "memory://")
		ch, err := bs.Subscriber().Subscribe(b.Context(), topic)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for m := range ch {
				m.Ack()
			}
		}()
		benchPublish(b, bs)
	})
	b.Run(bus.KindNATS, func(b *testing.B) {
		benchPublish(b, openBench(b, natstest.Start(b)))
	})
	b.Run(bus.KindPostgres, func(b *testing.B) {
		srv, err := pgtest.Start(pgtest.Options{Durable: true})
		if err != nil {
			pgtest.Unavailable(b, err)
		}
		b.Cleanup(func() {
			if err := srv.Stop(); err != nil {
				b.Error(err)
			}
		})
		url, err := srv.CreateDatabase(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		benchPublish(b, openBench(b, url))
	})
}

func openBench(b *testing.B, url string) *bus.Bus {
	b.Helper()
	bs, err := bus.Open(b.Context(), url, bus.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bs.Close() })
	return bs
}

func benchPublish(b *testing.B, bs *bus.Bus) {
	payload := []byte(`{"status":"approved","reason":"documents verified","reviewer":"ops-17","score":0.97}`)
	// Build every message up front so the figure is the transport's.
	lanes := make([][][]*message.Message, benchPublishers)
	for l := range lanes {
		lanes[l] = make([][]*message.Message, benchBatchesPerOp)
		for i := range lanes[l] {
			batch := make([]*message.Message, benchBatchSize)
			for j := range batch {
				m := message.NewMessage(watermill.NewUUID(), payload)
				customer := fmt.Sprintf("cus_%d_%d", l, (i*benchBatchSize+j)%benchCustomers)
				m.Metadata = message.Metadata{
					"ce_specversion": "1.0",
					"ce_id":          m.UUID,
					"ce_type":        "kyc.customer.CustomerApproved",
					"ce_source":      "/kyc",
					"ce_subject":     customer,
					"kyc_stream":     "customer-" + customer,
					"kyc_revision":   "3",
					"kyc_position":   "123456",
					bus.PartitionKey: customer,
				}
				batch[j] = m
			}
			lanes[l][i] = batch
		}
	}
	// Warm up: create the stream or tables outside the measurement.
	if err := bs.Publisher().Publish(topic, lanes[0][0][:1]...); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, benchPublishers)
		for _, lane := range lanes {
			wg.Go(func() {
				for _, batch := range lane {
					// New UUIDs each op, or JetStream would drop them all as
					// duplicates of the previous op.
					for _, m := range batch {
						m.UUID = watermill.NewUUID()
					}
					if err := bs.Publisher().Publish(topic, batch...); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	perOp := benchPublishers * benchBatchesPerOp * benchBatchSize
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "msgs/s")
}
