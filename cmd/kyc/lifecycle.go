package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newLifecycleCmd() *cobra.Command {
	var flags storeFlags
	cmd := &cobra.Command{
		Use:   "lifecycle",
		Short: "List and show the lifecycle definitions",
	}
	flags.register(cmd.PersistentFlags())
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the lifecycles with their versions and states",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ls, err := flags.lifecycles()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tVERSION\tINITIAL\tSTATES\tTRANSITIONS\tDESCRIPTION")
			for _, name := range ls.Names() {
				l, _ := ls.Latest(name)
				def := l.Definition()
				marker := ""
				if name == ls.Default() {
					marker = " (default)"
				}
				fmt.Fprintf(w, "%s%s\t%d\t%s\t%d\t%d\t%s\n", name, marker, def.Version, def.Initial, len(def.States), len(def.Transitions), def.Description)
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:   "show NAME",
		Short: "Print a lifecycle as a Mermaid state diagram",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ls, err := flags.lifecycles()
			if err != nil {
				return err
			}
			l, err := ls.Latest(args[0])
			if err != nil {
				return fmt.Errorf("%w (known: %v)", err, ls.Names())
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), l.Mermaid())
			return err
		},
	})
	return cmd
}
