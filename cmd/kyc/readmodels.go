package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// readFile holds the read models beside the event log. It is a file of its
// own so that the projection writer never waits for the event writer's lock
// (SQLite has one writer per file) and so that deleting it is a safe way to
// have every read model rebuilt from the log.
const readFile = "read.db"

func (f *storeFlags) readPath() string { return filepath.Join(f.dataDir, readFile) }

// readSide is the running read side of a process that owns the data folder.
type readSide struct {
	store  readStore
	engine *projections.Engine
	reader *projections.Reader
	// leases is nil where one process owns the read models; otherwise the
	// deployment's lease service, which the relay runs under as well.
	leases projections.Leases
}

type readSideConfig struct {
	events     projections.EventSource
	streams    projections.StreamReader
	lifecycles *domain.Lifecycles
	codec      *domain.Codec
	log        *slog.Logger
	observer   projections.Observer
	// maxLag is the engine's MaxLag (serve's --max-read-lag).
	maxLag time.Duration
	// only, when set, names the one projection the engine runs (a local
	// rebuild): the others would catch up beside it, at its expense, and
	// stop unfinished when it ends.
	only string
}

// openReadSide opens the read-model store and builds the engine and the
// reader; the engine is not started.
func (f *storeFlags) openReadSide(ctx context.Context, cfg readSideConfig) (*readSide, error) {
	store, err := f.openReadModels(ctx, false, cfg.log)
	if err != nil {
		return nil, fmt.Errorf("open read models: %w", err)
	}
	leases, err := f.leases(cfg.log)
	if err != nil {
		store.Close()
		return nil, err
	}
	customers, err := projections.NewCustomers(store, cfg.codec, cfg.lifecycles)
	if err != nil {
		store.Close()
		return nil, err
	}
	audit, err := projections.NewAudit(store, cfg.codec)
	if err != nil {
		store.Close()
		return nil, err
	}
	run := []projections.Projection{customers, audit}
	if cfg.only != "" {
		run = slices.DeleteFunc(run, func(p projections.Projection) bool { return p.Name() != cfg.only })
		if len(run) == 0 {
			store.Close()
			return nil, fmt.Errorf("%w: %q (customers or audit)", projections.ErrUnknownProjection, cfg.only)
		}
	}
	engine, err := projections.NewEngine(projections.EngineConfig{
		Events: cfg.events, Store: store, Projections: run,
		Logger: cfg.log, Observer: cfg.observer, Leases: leases, MaxLag: cfg.maxLag,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	// Where several processes share the read models, the projection a read
	// waits for may run in another process, so reads poll instead of
	// waiting for this engine's commits.
	var notifier projections.AppliedNotifier = engine
	if leases != nil {
		notifier = nil
	}
	reader, err := projections.NewReader(projections.ReaderConfig{Store: store, Streams: cfg.streams, Codec: cfg.codec, Notifier: notifier})
	if err != nil {
		store.Close()
		return nil, err
	}
	return &readSide{store: store, engine: engine, reader: reader, leases: leases}, nil
}
