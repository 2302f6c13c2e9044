package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/adapters/httpapi"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// serverFlags point a tool at a running server instead of the data folder.
type serverFlags struct {
	url       string
	tokenFile string
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "server", "", "base URL of a running `kyc serve` (e.g. http://127.0.0.1:8080) to act through")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding a superuser bearer token for --server (default: the data folder's superuser token)")
}

func newProjectionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Inspect and rebuild the read models",
	}
	cmd.AddCommand(newProjectionsStatusCmd(), newProjectionsRebuildCmd())
	return cmd
}

func newProjectionsStatusCmd() *cobra.Command {
	var (
		store  storeFlags
		server serverFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's generation, checkpoint and lag",
		Long: `status prints each projection's active generation, checkpoint and lag behind
the event log, in events and in seconds. It reads the data folder directly (it
may run beside a server), or asks a server with --server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var (
				sts []projections.Status
				err error
			)
			if server.url != "" {
				sts, err = server.status(cmd.Context(), store)
			} else {
				sts, err = localStatus(cmd.Context(), store)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(sts)
			}
			return printStatus(cmd.OutOrStdout(), sts)
		},
	}
	store.register(cmd.Flags())
	server.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func localStatus(ctx context.Context, f storeFlags) ([]projections.Status, error) {
	events, err := f.openEvents(ctx, true, nil, nil)
	if err != nil {
		return nil, err
	}
	defer events.Close()
	read, err := f.openReadModels(ctx, true, nil)
	if err != nil {
		return nil, err
	}
	defer read.Close()
	var out []projections.Status
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		st, err := projections.ProjectionStatus(ctx, read, events, name, time.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func printStatus(w io.Writer, sts []projections.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tVERSION\tGENERATION\tCHECKPOINT\tLAG EVENTS\tLAG SECONDS\tUPDATED\tNOTE")
	for _, s := range sts {
		note := s.Error
		if s.Rebuild != nil {
			note = fmt.Sprintf("rebuilding into generation %d: %d of %d events", s.Rebuild.Generation, s.Rebuild.Applied, s.Rebuild.Total)
		}
		if s.Generation == 0 {
			note = "not built yet"
		}
		updated := "-"
		if !s.UpdatedAt.IsZero() {
			updated = s.UpdatedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%.3f\t%s\t%s\n", s.Name, s.Version, s.Generation, s.Checkpoint, s.LagEvents, s.LagSeconds, updated, note)
	}
	return tw.Flush()
}

func newProjectionsRebuildCmd() *cobra.Command {
	var (
		store  storeFlags
		server serverFlags
	)
	cmd := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a read model from the start of the log, with a progress bar",
		Long: `rebuild fills a new generation of the named projection (customers or audit)
from the start of the event log, then swaps it in for the old one in one step.

Without --server it works on the data folder and needs the server stopped (it
takes the writer lock); it runs the named projection only, and the others catch
up when the server next starts. Where the projection has no generation yet, it
builds the first one from the start of the log, as a server start would. With
--server it asks the running server to rebuild: reads keep being served from
the old generation until the swap.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bar := newRebuildBar(cmd.ErrOrStderr(), args[0])
			if server.url != "" {
				return server.rebuild(cmd.Context(), store, args[0], bar)
			}
			return localRebuild(cmd.Context(), store, args[0], bar)
		},
	}
	store.register(cmd.Flags())
	server.register(cmd)
	return cmd
}

// rebuildBar draws a rebuild's progress: events applied, rate and ETA.
type rebuildBar struct {
	w   io.Writer
	bar *progressbar.ProgressBar
	max int64
}

func newRebuildBar(w io.Writer, name string) *rebuildBar {
	return &rebuildBar{w: w, bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("rebuild "+name),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
	)}
}

func (b *rebuildBar) update(p projections.RebuildProgress) {
	// The log grows while it is rebuilt, and a finished rebuild has applied
	// all of it.
	total := max(p.Total, p.Applied)
	if p.Done {
		total = p.Applied
	}
	if total > 0 && total != b.max {
		b.max = total
		b.bar.ChangeMax64(total)
	}
	_ = b.bar.Set64(p.Applied)
}

func (b *rebuildBar) finish(p projections.RebuildProgress) {
	b.update(p)
	_ = b.bar.Finish()
	elapsed := time.Since(p.Started)
	rate := float64(p.Applied) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(b.w, "\nrebuilt %s: %d events in %s (%.0f events/s); reads now use generation %d\n",
		p.Projection, p.Applied, elapsed.Round(time.Millisecond), rate, p.Generation)
}

func localRebuild(ctx context.Context, f storeFlags, name string, bar *rebuildBar) error {
	lifecycles, err := f.lifecycles()
	if err != nil {
		return err
	}
	events, err := f.openEvents(ctx, false, nil, nil)
	if errors.Is(err, embedded.ErrLocked) {
		return fmt.Errorf("%w\na server is running on this data folder: rebuild through it with --server URL (reads stay online)", err)
	}
	if err != nil {
		return err
	}
	defer events.Close()
	codec := domain.NewCodec()
	first := &firstBuild{name: name, caughtUp: make(chan struct{})}
	rs, err := f.openReadSide(ctx, readSideConfig{events: events, streams: events, lifecycles: lifecycles, codec: codec,
		log: slog.New(slog.DiscardHandler), only: name, observer: first})
	if err != nil {
		return err
	}
	defer rs.store.Close()
	_, built, err := rs.store.State(ctx, name)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		rs.engine.Wait()
	}()
	first.started = time.Now()
	if err := rs.engine.Start(runCtx); err != nil {
		return err
	}
	// Where servers share the database, one of them runs the projection and
	// keeps its lease; this process gets it only if none does.
	if err := waitRunsHere(ctx, rs.engine, name, 5*time.Second); err != nil {
		return err
	}
	if !built {
		// Start builds a projection that has no generation yet from the
		// start of the log; a rebuild beside it would write every row twice
		// (it halved the rate at 1,000,000 customers).
		return first.follow(ctx, rs.store, events, bar)
	}
	var last projections.RebuildProgress
	err = rs.engine.Rebuild(ctx, name, func(p projections.RebuildProgress) {
		last = p
		bar.update(p)
	})
	if err != nil {
		return err
	}
	bar.finish(last)
	return nil
}

// firstBuild follows the engine building a projection's first generation
// from the start of the log: a projections.Observer that counts the events
// applied to it and notices when it has caught up with the log.
type firstBuild struct {
	name     string
	started  time.Time
	applied  atomic.Int64
	once     sync.Once
	caughtUp chan struct{}
}

func (b *firstBuild) Applied(projection string, batch []domain.RecordedEvent, _ time.Duration, rebuilding bool) {
	if projection == b.name && !rebuilding {
		b.applied.Add(int64(len(batch)))
	}
}

func (b *firstBuild) Lag(projection string, events int64, _ float64) {
	if projection == b.name && events == 0 {
		b.once.Do(func() { close(b.caughtUp) })
	}
}

func (*firstBuild) Held(string, time.Duration) {}

// follow draws the build's progress until it has caught up.
func (b *firstBuild) follow(ctx context.Context, store projections.Store, events projections.EventSource, bar *rebuildBar) error {
	p := projections.RebuildProgress{Projection: b.name, Total: -1, Started: b.started}
	if c, ok := events.(projections.EventCounter); ok {
		if n, err := c.CountAfter(ctx, domain.Start); err == nil {
			p.Total = n
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		p.Applied = b.applied.Load()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.caughtUp:
			st, _, err := store.State(ctx, b.name)
			if err != nil {
				return err
			}
			p.Applied, p.Generation, p.Done = b.applied.Load(), st.Active, true
			bar.finish(p)
			return nil
		case <-tick.C:
			bar.update(p)
		}
	}
}

func waitRunsHere(ctx context.Context, e *projections.Engine, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !e.RunsHere(name) {
		if time.Now().After(deadline) {
			return fmt.Errorf("projection %s: %w (a server runs it): rebuild through that server with --server URL", name, projections.ErrRunsElsewhere)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func (s serverFlags) token(f storeFlags) (string, error) {
	path := s.tokenFile
	if path == "" {
		path = f.dataDir + string(os.PathSeparator) + httpapi.SuperuserTokenFile
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the bearer token (give --token-file): %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s serverFlags) call(ctx context.Context, f storeFlags, method, path string, out any) error {
	tok, err := s.token(f)
	if err != nil {
		return err
	}
	u, err := url.JoinPath(s.url, path)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask the server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("ask the server: %w", err)
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &p)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, p.Detail)
	}
	if out != nil {
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

type statusResponse struct {
	Items []projections.Status `json:"items"`
}

func (s serverFlags) status(ctx context.Context, f storeFlags) ([]projections.Status, error) {
	var out statusResponse
	err := s.call(ctx, f, "GET", "/v1/projections", &out)
	return out.Items, err
}

func (s serverFlags) rebuild(ctx context.Context, f storeFlags, name string, bar *rebuildBar) error {
	var started projections.RebuildProgress
	if err := s.call(ctx, f, "POST", "/v1/projections/"+url.PathEscape(name)+"/rebuild", &started); err != nil {
		return err
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := started
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped watching; the server goes on rebuilding: %w", ctx.Err())
		case <-tick.C:
		}
		sts, err := s.status(ctx, f)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if st.Name != name {
				continue
			}
			switch {
			case st.Rebuild != nil && st.Rebuild.Generation == started.Generation:
				last = *st.Rebuild
				bar.update(last)
			case st.Generation == started.Generation:
				last.Done = true
				bar.finish(last)
				return nil
			case st.Rebuild == nil:
				return fmt.Errorf("the rebuild of %s into generation %d stopped before it was swapped in (see the server's log)", name, started.Generation)
			}
		}
	}
}
