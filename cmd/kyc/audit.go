package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/kycengine/kyc/domain"
)

func newReplayCmd() *cobra.Command {
	var (
		flags    storeFlags
		revision int64
		at       string
	)
	cmd := &cobra.Command{
		Use:   "replay CUSTOMER_ID",
		Short: "Print a customer's state as it was at a revision or a time",
		Long: `replay folds a customer's stream from the store and prints the state as JSON.
With --revision N it stops after revision N (the first event is revision 0);
with --at TIME (RFC 3339) it stops at the last event recorded by then.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				rev *uint64
				t   *time.Time
			)
			if cmd.Flags().Changed("revision") && cmd.Flags().Changed("at") {
				return errors.New("give --revision or --at, not both")
			}
			if cmd.Flags().Changed("revision") {
				if revision < 0 {
					return errors.New("--revision must be 0 or more")
				}
				r := uint64(revision)
				rev = &r
			}
			if at != "" {
				parsed, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return fmt.Errorf("--at: %q is not an RFC 3339 time", at)
				}
				t = &parsed
			}
			store, err := flags.openEvents(cmd.Context(), true, nil, nil)
			if err != nil {
				return err
			}
			defer store.Close()
			events, err := readCustomer(cmd.Context(), store, args[0])
			if err != nil {
				return err
			}
			c, err := domain.ReplayState(domain.NewCodec(), events, rev, t)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(c)
		},
	}
	flags.register(cmd.Flags())
	cmd.Flags().Int64Var(&revision, "revision", 0, "last revision to apply")
	cmd.Flags().StringVar(&at, "at", "", "time (RFC 3339) to replay to")
	return cmd
}

func newVerifyCmd() *cobra.Command {
	var flags storeFlags
	cmd := &cobra.Command{
		Use:   "verify [CUSTOMER_ID]",
		Short: "Check the hash chains of one customer's stream or of the whole store",
		Long: `verify recomputes every event's hash and checks it links to the event before
it in its stream. It exits 0 when every chain holds, and 2 naming the first
broken event when anything was altered, removed or reordered.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := flags.openEvents(cmd.Context(), true, nil, nil)
			if err != nil {
				return err
			}
			defer store.Close()
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			v := domain.NewChainVerifier()
			count := 0
			check := func(events []domain.RecordedEvent) *domain.BrokenLink {
				for _, e := range events {
					if broken := v.Add(e); broken != nil {
						return broken
					}
					count++
				}
				return nil
			}
			var broken *domain.BrokenLink
			if len(args) == 1 {
				events, err := readCustomer(cmd.Context(), store, args[0])
				if err != nil {
					return err
				}
				broken = check(events)
			} else {
				after := domain.Start
				start := time.Now()
				for broken == nil {
					page, err := store.ReadAll(cmd.Context(), after, 5000)
					if err != nil {
						return err
					}
					if len(page) == 0 {
						break
					}
					broken = check(page)
					after = page[len(page)-1].Position
					if count%100_000 < len(page) && count >= 100_000 {
						fmt.Fprintf(errOut, "verified %d events (%.0f/s)\n", count, float64(count)/time.Since(start).Seconds())
					}
				}
			}
			if broken != nil {
				fmt.Fprintf(out, "BROKEN: stream %s revision %d event %s: %s\n", broken.Stream, broken.Revision, broken.EventID, broken.Reason)
				return exitError{code: 2}
			}
			fmt.Fprintf(out, "OK: %d events in %d streams, every hash chain holds\n", count, v.Streams())
			return nil
		},
	}
	flags.register(cmd.Flags())
	return cmd
}

// readCustomer reads a customer's whole stream, saying plainly when there is
// no such customer.
func readCustomer(ctx context.Context, store domain.EventStore, id string) ([]domain.RecordedEvent, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("customer id %q is not a UUID", id)
	}
	events, err := store.ReadStream(ctx, domain.StreamName(id), domain.Forwards, 0, 0)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return nil, fmt.Errorf("no customer %s in this store", id)
	}
	return events, err
}
