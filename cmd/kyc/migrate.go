package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	var flags storeFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the stores' schemas to this binary's version",
		Long: `migrate applies the SQL migrations of the event store and of the read-model
store and exits. serve does the same on start, so migrate is for deployments
that change schemas in a step of their own (before rolling out new servers,
say). Several processes may run it at once: PostgreSQL migrations run under an
advisory lock.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			done, err := flags.migrate(cmd.Context())
			if err != nil {
				return err
			}
			for _, d := range done {
				fmt.Fprintln(cmd.OutOrStdout(), "migrated", d)
			}
			return nil
		},
	}
	flags.register(cmd.Flags())
	return cmd
}
