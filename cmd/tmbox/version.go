package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/internal/version"
)

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print tmbox's version, the Go version and the compiled-in Istio version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			w := cmd.OutOrStdout()
			switch output {
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			case "text", "":
				fmt.Fprintf(w, "tmbox:    %s\n", info.Version)
				if info.Commit != "" {
					fmt.Fprintf(w, "commit:   %s\n", info.Commit)
				}
				fmt.Fprintf(w, "go:       %s %s\n", info.GoVersion, info.Platform)
				fmt.Fprintf(w, "istio:    %s", info.Istio)
				if info.IstioModule != "" {
					fmt.Fprintf(w, " (istio.io/istio %s)", info.IstioModule)
				}
				fmt.Fprintln(w)
				return nil
			default:
				return &usageError{fmt.Errorf("unknown output format %q (want text or json)", output)}
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
