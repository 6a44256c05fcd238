package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/installer"
)

// outputFlag adds -o/--output with the given formats, the first the default.
func outputFlag(cmd *cobra.Command, target *string, formats ...string) {
	cmd.Flags().StringVarP(target, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput refuses a format outside formats as a usage error.
func checkOutput(format string, formats ...string) error {
	if !slices.Contains(formats, format) {
		return &usageError{fmt.Errorf("unknown output format %q (want %s)", format, strings.Join(formats, ", "))}
	}
	return nil
}

// writeStructured writes v as JSON or YAML.
func writeStructured(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}

// table writes aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// withResult runs a command that reports events and, with -o json, ends
// its event stream with a result event: outcome, exit code, error and
// duration.
func withResult(output *string, run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		start := time.Now()
		err := run(cmd, args)
		if *output == "json" {
			result, code := outcome(cmd.Context(), err)
			ev := installer.Event{Time: time.Now(), Type: installer.EventResult, Result: result, ExitCode: &code, Duration: time.Since(start)}
			if err != nil {
				ev.Error = err.Error()
			}
			(&installer.JSONReporter{W: cmd.OutOrStdout()}).Report(ev)
		}
		return err
	}
}
