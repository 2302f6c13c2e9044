package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// storeFlags are the flags of every subcommand that opens a store, so they
// all find the same data the same way.
type storeFlags struct {
	dataDir          string
	defaultLifecycle string
}

func (f *storeFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.dataDir, "data", "data", "data folder of the embedded store (created if missing)")
	fs.StringVar(&f.defaultLifecycle, "default-lifecycle", "kyc-review", "lifecycle of new customers that name none")
}

const storeFile = "kyc.db"

func (f *storeFlags) storePath() string { return filepath.Join(f.dataDir, storeFile) }

// openWritable opens the store for a server: it creates the data folder and
// takes the writer lock.
func (f *storeFlags) openWritable(ctx context.Context, opts ...embedded.Option) (*embedded.Store, error) {
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	return embedded.Open(ctx, f.storePath(), opts...)
}

// openReadOnly opens the store for tools that only read; they may run beside
// a server.
func (f *storeFlags) openReadOnly(ctx context.Context) (*embedded.Store, error) {
	if _, err := os.Stat(f.storePath()); err != nil {
		return nil, fmt.Errorf("no store at %s (is --data right?): %w", f.storePath(), err)
	}
	return embedded.OpenReadOnly(ctx, f.storePath())
}

func (f *storeFlags) lifecycles() (*domain.Lifecycles, error) {
	return domain.LoadLifecycles(schemas.Lifecycles(), f.defaultLifecycle)
}
