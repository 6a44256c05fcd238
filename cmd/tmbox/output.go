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

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
)

// Output formats of -o/--output. Every command that has -o takes its
// format there, from this one set: text (for people), json and yaml (for
// scripts; commands that stream events take json only).
const (
	formatText = "text"
	formatJSON = "json"
	formatYAML = "yaml"
	// formatTable is what plan, status, versions, preflight and bundle
	// inspect called text before; it is accepted, with a deprecation
	// warning, wherever text is.
	formatTable = "table"
)

// allFormats are the formats of a command whose output is one document.
func allFormats() []string { return []string{formatText, formatJSON, formatYAML} }

// streamFormats are the formats of a command that reports events as it
// runs (install, upgrade, configure, uninstall): JSON lines or text.
func streamFormats() []string { return []string{formatText, formatJSON} }

// outputValue is the value of -o/--output: one of formats. It is the one
// validator of -o: a bad value fails while flags are parsed (or while the
// environment and config file are applied), as a usage error.
type outputValue struct {
	target  *string
	formats []string
	// pathFlag is the flag that now takes the path -o used to take
	// (render's --output-dir, bundle create's --file); a value that is
	// not a format is then refused saying so.
	pathFlag string
	// table is set when the value was the deprecated "table".
	table bool
}

// Set validates and stores a format.
func (v *outputValue) Set(s string) error {
	v.table = false
	switch {
	case s == formatTable && slices.Contains(v.formats, formatText):
		*v.target, v.table = formatText, true
		return nil
	case slices.Contains(v.formats, s):
		*v.target = s
		return nil
	case v.pathFlag != "":
		return fmt.Errorf("-o is the output format now (%s); use %s for the path", strings.Join(v.formats, ", "), v.pathFlag)
	}
	return fmt.Errorf("unknown output format %s (want %s)", catalog.QuoteShort(s), strings.Join(v.formats, ", "))
}

// String returns the format.
func (v *outputValue) String() string { return *v.target }

// Type names the value in the help.
func (v *outputValue) Type() string { return "format" }

// outputFlag adds -o/--output with the given formats, the first the
// default, and returns its value (movedTo names the flag a path moved to).
func outputFlag(cmd *cobra.Command, target *string, formats ...string) *outputValue {
	*target = formats[0]
	v := &outputValue{target: target, formats: formats}
	cmd.Flags().VarP(v, "output", "o", "output format: "+strings.Join(formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	return v
}

// movedTo records that -o took a path before, now taken by flag (e.g.
// "--file FILE"): a -o value that is not a format is refused naming it.
func (v *outputValue) movedTo(flag string) { v.pathFlag = flag }

// warnDeprecatedOutput warns, on stderr, about -o table (an alias of -o
// text kept for old scripts).
func warnDeprecatedOutput(cmd *cobra.Command) {
	if f := cmd.Flags().Lookup("output"); f != nil {
		if v, ok := f.Value.(*outputValue); ok && v.table {
			fmt.Fprintln(cmd.ErrOrStderr(), `Flag --output value "table" has been deprecated, use -o text (the same output)`)
		}
	}
}

// deprecatedAlias adds a hidden, deprecated second name for the string
// flag name (cobra prints the warning when it is used).
func deprecatedAlias(cmd *cobra.Command, alias, name string) {
	f := cmd.Flags().Lookup(name)
	cmd.Flags().Var(f.Value, alias, f.Usage)
	_ = cmd.Flags().MarkDeprecated(alias, "use --"+name+" instead")
}

// writeStructured writes v as JSON or YAML.
func writeStructured(w io.Writer, format string, v any) error {
	switch format {
	case formatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	case formatYAML:
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
		if *output == formatJSON {
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
