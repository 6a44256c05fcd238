package main

import (
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
			if output != formatText {
				return writeStructured(w, output, info)
			}
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
		},
	}
	outputFlag(cmd, &output, allFormats()...)
	return cmd
}
