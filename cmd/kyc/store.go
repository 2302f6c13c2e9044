package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/adapters/eventstore/kurrentdb"
	pgevents "github.com/kycengine/kyc/adapters/eventstore/postgres"
	pglease "github.com/kycengine/kyc/adapters/lease/postgres"
	pgread "github.com/kycengine/kyc/adapters/readmodel/postgres"
	"github.com/kycengine/kyc/adapters/readmodel/sqlite"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
	"github.com/kycengine/kyc/schemas"
)

// storeFlags are the flags of every subcommand that opens a store, so they
// all find the same data the same way.
type storeFlags struct {
	dataDir          string
	defaultLifecycle string
	// events and read are store URLs; empty means the embedded files in
	// dataDir (for read: the events database when that is PostgreSQL).
	events string
	read   string
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", "data", "data folder: the embedded store's files and the superuser token (created if missing)")
	fs.StringVar(&f.defaultLifecycle, "default-lifecycle", "kyc-review", "lifecycle of new customers that name none")
	fs.StringVar(&f.events, "events", os.Getenv("KYC_EVENTS"),
		"event store URL: postgres://... for PostgreSQL, esdb://... or esdb+discover://... for KurrentDB; empty for the embedded file in --data (env KYC_EVENTS)")
	fs.StringVar(&f.read, "read", os.Getenv("KYC_READ"),
		"read-model store URL: postgres://...; empty for read.db in --data, or the --events database when that is PostgreSQL (env KYC_READ)")
}

const storeFile = "kyc.db"

func (f *storeFlags) storePath() string { return filepath.Join(f.dataDir, storeFile) }

// storeKind is the adapter a store URL names.
type storeKind string

const (
	kindEmbedded storeKind = "embedded"
	kindPostgres storeKind = "postgres"
	kindKurrent  storeKind = "kurrentdb"
)

func kindOf(flag, raw string) (storeKind, error) {
	if raw == "" {
		return kindEmbedded, nil
	}
	// Not url.Parse: a KurrentDB connection string may list several hosts
	// (esdb://node1:2113,node2:2113), which is not a URL.
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return "", fmt.Errorf("--%s: %q is not a store URL (want postgres://... or esdb://...)", flag, redact(raw))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return kindPostgres, nil
	case "esdb", "esdb+discover":
		if flag == "read" {
			return "", fmt.Errorf("--read: KurrentDB holds events, not read models; give --read a postgres:// URL or leave it empty for the embedded read models")
		}
		return kindKurrent, nil
	}
	return "", fmt.Errorf("--%s: unsupported store %q (want postgres://..., or esdb://... for --events; leave it empty for the embedded store)", flag, scheme+"://")
}

// readURL is the read-model store's URL: --read, else the events database
// when that is PostgreSQL (one database serves both), else the embedded file.
func (f *storeFlags) readURL() (storeKind, string, error) {
	raw := f.read
	if raw == "" {
		if k, err := kindOf("events", f.events); err != nil {
			return "", "", err
		} else if k == kindPostgres {
			raw = f.events
		}
	}
	k, err := kindOf("read", raw)
	return k, raw, err
}

// eventStore is what the commands need of an event store, whichever it is.
// Stores that can count the events after a position cheaply also implement
// projections.EventCounter, which the projection engine looks for.
type eventStore interface {
	domain.EventStore
	domain.IdempotencyIndex
	Close() error
}

// readStore is a read-model store the commands can close.
type readStore interface {
	projections.Store
	Close() error
}

// commitObserver is told of every commit of the event store, for metrics.
type commitObserver interface {
	BatchCommitted(requests, events int, d time.Duration)
}

// openEvents opens the event store for a server, or, with readOnly, for
// tools that only read and may run beside a server.
func (f *storeFlags) openEvents(ctx context.Context, readOnly bool, log *slog.Logger, obs commitObserver) (eventStore, error) {
	kind, err := kindOf("events", f.events)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch kind {
	case kindPostgres:
		opts := []pgevents.Option{pgevents.WithLogger(log)}
		if obs != nil {
			opts = append(opts, pgevents.WithObserver(obs))
		}
		return pgevents.Open(ctx, f.events, opts...)
	case kindKurrent:
		return kurrentdb.Open(ctx, f.events, kurrentdb.WithLogger(log))
	}
	if readOnly {
		if _, err := os.Stat(f.storePath()); err != nil {
			return nil, fmt.Errorf("no store at %s (is --data right?): %w", f.storePath(), err)
		}
		return embedded.OpenReadOnly(ctx, f.storePath())
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	var opts []embedded.Option
	if obs != nil {
		opts = append(opts, embedded.WithObserver(obs))
	}
	s, err := embedded.Open(ctx, f.storePath(), opts...)
	if errors.Is(err, embedded.ErrLocked) {
		return nil, fmt.Errorf("%w\nanother kyc process (a server?) has this data folder open for writing", err)
	}
	return s, err
}

// describeEvents names the event store for logs, without credentials.
func (f *storeFlags) describeEvents() string {
	if f.events == "" {
		return f.storePath()
	}
	return redact(f.events)
}

func (f *storeFlags) describeRead() string {
	kind, raw, err := f.readURL()
	if err != nil || kind == kindEmbedded {
		return f.readPath()
	}
	return redact(raw)
}

// redact hides the password of a store URL. KurrentDB connection strings
// with several hosts are not URLs; their user information is cut by hand.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(unparsable URL)"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 && !strings.ContainsAny(rest[:at], "/?") {
		user, _, _ := strings.Cut(rest[:at], ":")
		rest = user + ":xxxxx" + rest[at:]
	}
	return scheme + "://" + rest
}

// openReadModels opens the read-model store; readOnly is for status reports
// beside a server on the embedded store.
func (f *storeFlags) openReadModels(ctx context.Context, readOnly bool, log *slog.Logger) (readStore, error) {
	kind, raw, err := f.readURL()
	if err != nil {
		return nil, err
	}
	if kind == kindPostgres {
		opts := []pgread.Option{}
		if log != nil {
			opts = append(opts, pgread.WithLogger(log))
		}
		return pgread.Open(ctx, raw, opts...)
	}
	if readOnly {
		if _, err := os.Stat(f.readPath()); err != nil {
			return nil, fmt.Errorf("no read models at %s (has `kyc serve` run on this --data?): %w", f.readPath(), err)
		}
		return sqlite.OpenReadOnly(ctx, f.readPath())
	}
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	return sqlite.Open(ctx, f.readPath(), sqlite.WithLogger(log))
}

// leases returns the lease service of a deployment where several processes
// share the read models, and nil where one process owns them (the embedded
// files are locked to one writer anyway).
func (f *storeFlags) leases(log *slog.Logger) (projections.Leases, error) {
	kind, raw, err := f.readURL()
	if err != nil || kind != kindPostgres {
		return nil, err
	}
	return pglease.New(pglease.Config{URL: raw, Logger: log})
}

// migrate brings both stores' schemas to this binary's version.
func (f *storeFlags) migrate(ctx context.Context) ([]string, error) {
	var done []string
	kind, err := kindOf("events", f.events)
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindPostgres:
		if err := pgevents.Migrate(ctx, f.events); err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
	case kindKurrent:
		// KurrentDB has no schema; opening proves it answers.
		s, err := f.openEvents(ctx, false, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		if err := s.Close(); err != nil {
			return nil, err
		}
	default:
		s, err := f.openEvents(ctx, false, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("event store: %w", err)
		}
		if err := s.Close(); err != nil {
			return nil, err
		}
	}
	done = append(done, "event store "+f.describeEvents())
	rkind, raw, err := f.readURL()
	if err != nil {
		return nil, err
	}
	if rkind == kindPostgres {
		if err := pgread.Migrate(ctx, raw); err != nil {
			return nil, fmt.Errorf("read models: %w", err)
		}
	} else {
		s, err := f.openReadModels(ctx, false, nil)
		if err != nil {
			return nil, fmt.Errorf("read models: %w", err)
		}
		if err := s.Close(); err != nil {
			return nil, err
		}
	}
	done = append(done, "read models "+f.describeRead())
	ds, err := f.openDeliveryState(ctx)
	if err != nil {
		return nil, fmt.Errorf("delivery state: %w", err)
	}
	if err := ds.Close(); err != nil {
		return nil, err
	}
	return append(done, "delivery state (relay checkpoint, webhooks) beside the read models"), nil
}

func (f *storeFlags) lifecycles() (*domain.Lifecycles, error) {
	return domain.LoadLifecycles(schemas.Lifecycles(), f.defaultLifecycle)
}
