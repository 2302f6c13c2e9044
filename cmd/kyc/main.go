// Command kyc is the KYC customer-lifecycle engine: the server and the tools
// that work on its store.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit code other than 1 and a message already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "kyc:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "kyc",
		Short: "KYC customer-lifecycle engine: every change to a customer is an event on its own stream",
		Long: `kyc runs the KYC customer-lifecycle engine and the tools that work on its store.

Every change to a customer is an event on the customer's own stream; a state
machine loaded from the lifecycle definitions decides which status changes are
allowed, and every event is hash-chained so an auditor can prove nothing was altered.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newLifecycleCmd(), newReplayCmd(), newVerifyCmd(), newProjectionsCmd(), newMigrateCmd(), newSubscribeCmd())
	return root
}
