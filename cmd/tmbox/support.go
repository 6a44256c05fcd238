package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/installer/support"
	"github.com/tmbox/tmbox/internal/version"
)

// supportRequestTimeout bounds each request to the cluster while a
// support bundle is collected (a cluster that accepts connections and
// never answers must not hold a collector for its whole budget).
const supportRequestTimeout = 20 * time.Second

// stateKey is the key of tmbox's state ConfigMap that holds the state
// (installer/state.go).
const stateKey = "state.json"

// supportFlags are support-bundle's flags.
type supportFlags struct {
	file, inspect, stateDir, mirror string
	// output is -o: the format of what is printed.
	output         string
	since, timeout time.Duration
	maxLogLines    int64
	redact         bool
}

func newSupportBundleCmd(g *globalOptions) *cobra.Command {
	var f supportFlags
	cmd := &cobra.Command{
		Use:   "support-bundle",
		Short: "Write a .tar.gz of what a vendor needs to diagnose this installation, credentials redacted",
		Long: `Collect, into one .tar.gz, what a vendor needs to understand this installation:

  tmbox/    version, state, settings, journal, tmbox's log files, preflight run now
  cluster/  version, nodes, every object tmbox manages (Secrets as names and keys
            only), the release namespaces' pods, events and container logs
            (current and previous), CRDs, webhook configurations, APIServices
  host/     OS, container engine and kind's node containers, disk and memory

Values that look like credentials (passwords, tokens, private keys, bearer
headers, URLs with user:password@, Docker auths) are replaced with
***REDACTED*** in every file; redaction-report.json lists how many per file and
rule, never the values. --redact=false keeps them, and the file's name must then
say "unredacted". index.json lists every file and what could not be collected.

The cluster is the one of --kubeconfig/--context (or $KUBECONFIG, ~/.kube/config,
or the kind cluster tmbox created in --state-dir). When it cannot be reached, the
bundle still holds this host's part and tmbox's local logs, and the command
exits 1 saying so. Nothing is written to the cluster. See docs/operations.md.`,
		Example: `  tmbox support-bundle
  tmbox support-bundle --file /tmp/case-4711.tar.gz --since 6h --max-log-lines 2000
  tmbox support-bundle --inspect tmbox-support-20260301T120000Z.tar.gz`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.inspect != "" {
				return inspectSupportBundle(cmd.OutOrStdout(), f.inspect, f.output)
			}
			path, err := f.bundlePath(time.Now())
			if err != nil {
				return err
			}
			return runSupportBundle(cmd, g, f, path)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.file, "file", "", "write the bundle to this file, ending in .tar.gz or .tgz (default tmbox-support-<UTC time>.tar.gz here)")
	outputFlag(cmd, &f.output, allFormats()...).movedTo("--file FILE")
	fl.DurationVar(&f.since, "since", support.DefaultSince, "collect events and current container logs this far back")
	fl.Int64Var(&f.maxLogLines, "max-log-lines", support.DefaultMaxLogLines, "keep this many of each container log's last lines")
	fl.BoolVar(&f.redact, "redact", true, "replace values that look like credentials with ***REDACTED***")
	fl.StringVar(&f.inspect, "inspect", "", "print the index of this bundle file (files, sizes, collectors, errors) without extracting it")
	fl.DurationVar(&f.timeout, "timeout", support.DefaultTimeout, "time budget of the whole collection; what is collected by then is written")
	fl.StringVar(&f.mirror, "mirror", "", "read the release's manifests for the preflight checks from this directory instead of downloading them (air-gapped hosts)")
	fl.StringVar(&f.stateDir, "state-dir", "", "tmbox's directory on this host, whose logs/ are collected (default ~/.local/state/tmbox)")
	return cmd
}

// bundlePath checks the flags and returns the file to write.
func (f supportFlags) bundlePath(now time.Time) (string, error) {
	switch {
	case f.since <= 0:
		return "", &usageError{fmt.Errorf("--since must be positive, got %s", f.since)}
	case f.maxLogLines <= 0:
		return "", &usageError{fmt.Errorf("--max-log-lines must be positive, got %d", f.maxLogLines)}
	case f.timeout <= 0:
		return "", &usageError{fmt.Errorf("--timeout must be positive, got %s", f.timeout)}
	}
	if f.file == "" {
		return defaultBundleName(now, f.redact), nil
	}
	if !strings.HasSuffix(f.file, ".tar.gz") && !strings.HasSuffix(f.file, ".tgz") {
		return "", &usageError{fmt.Errorf("--file %s: the bundle is a .tar.gz: name it FILE.tar.gz or FILE.tgz", f.file)}
	}
	if !f.redact && !strings.Contains(strings.ToLower(f.file), "unredacted") {
		return "", &usageError{fmt.Errorf("--file %s: with --redact=false the bundle holds credentials, and its name must say so: put \"unredacted\" in it", f.file)}
	}
	return f.file, nil
}

// defaultBundleName is tmbox-support-<UTC time>.tar.gz, with UNREDACTED
// in it when the bundle is not redacted.
func defaultBundleName(now time.Time, redacted bool) string {
	stamp := now.UTC().Format("20060102T150405Z")
	if !redacted {
		return "tmbox-support-UNREDACTED-" + stamp + ".tar.gz"
	}
	return "tmbox-support-" + stamp + ".tar.gz"
}

// runSupportBundle collects the bundle into path.
func runSupportBundle(cmd *cobra.Command, g *globalOptions, f supportFlags, path string) error {
	errOut := cmd.ErrOrStderr()
	base := installer.Options{StateDir: f.stateDir}
	stateDir := base.StateDirPath()
	logger := g.logger(errOut)
	kubeconfig, createCluster := supportKubeconfig(g, stateDir)
	cluster := supportCluster(cmd.Context(), kubeconfig, g.context)
	var lastSkip string
	o := support.Options{
		Redact: f.redact, Since: f.since, MaxLogLines: f.maxLogLines, Timeout: f.timeout,
		Version: version.Get(), StateDir: stateDir, Cluster: cluster, Logger: logger,
		Preflight: func(ctx context.Context, release string) (any, error) {
			p := &installer.Preflight{Options: installer.Options{
				Release: release, CatalogFile: g.catalogFile, Mirror: f.mirror, Kubeconfig: kubeconfig, Context: g.context,
				StateDir: f.stateDir, CreateCluster: createCluster, Logger: logger,
			}}
			rep, err := p.Run(ctx)
			if err != nil {
				return nil, fmt.Errorf("preflight: %w", err)
			}
			return preflightOutput{Release: rep.Release, Target: rep.Target, Passed: rep.Err() == nil, Results: rep.Results}, nil
		},
		Progress: func(p support.Progress) {
			switch {
			case !p.Done:
				fmt.Fprintf(errOut, "[support] collecting %s\n", p.What)
			case p.Status == support.StatusSkipped && p.Error == lastSkip:
				fmt.Fprintf(errOut, "[support] skipped %s (same reason)\n", p.What)
			case p.Status == support.StatusSkipped:
				fmt.Fprintf(errOut, "[support] skipped %s: %s\n", p.What, p.Error)
				lastSkip = p.Error
			case p.Status == support.StatusFailed:
				fmt.Fprintf(errOut, "[support] could not collect %s: %s\n", p.What, p.Error)
			}
		},
	}
	res, err := support.Create(cmd.Context(), path, o)
	if err != nil {
		return err
	}
	ix := res.Index
	redacted, replaced := "not redacted", 0
	if ix.Redacted {
		for _, r := range res.Report.Redactions {
			replaced += r.Count
		}
		redacted = fmt.Sprintf("redacted: %d values replaced", replaced)
	}
	fmt.Fprintf(errOut, "[support] wrote %s (%s, %d files, %s)\n", path, humanBytes(res.Bytes), len(ix.Files), redacted)
	// Without the cluster, the error below says so once; the warning
	// names what failed besides.
	var names []string
	for _, c := range ix.Failed() {
		if !ix.Cluster.Reachable && (strings.HasPrefix(c.Error, "the cluster could not be reached") || c.Error == ix.Cluster.Error) {
			continue
		}
		names = append(names, c.What)
	}
	if len(names) > 0 {
		fmt.Fprintf(errOut, "[support] warning: not collected: %s (tmbox support-bundle --inspect %s shows why)\n", strings.Join(names, ", "), path)
	}
	if f.output != formatText {
		doc := supportOutput{File: path, Bytes: res.Bytes, Files: len(ix.Files), Redacted: ix.Redacted, Replaced: replaced, Cluster: ix.Cluster, NotCollected: names}
		if err := writeStructured(cmd.OutOrStdout(), f.output, doc); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), path)
	}
	if !ix.Cluster.Reachable {
		return fmt.Errorf("wrote %s, but nothing could be collected from the cluster (%s): it holds only this host's part and tmbox's local files", path, ix.Cluster.Error)
	}
	return nil
}

// supportKubeconfig is the kubeconfig to collect from: --kubeconfig, else
// the default kubeconfig, else, when there is none, the kind cluster's
// tmbox keeps in the state dir; createCluster says preflight should
// check this host for a kind cluster (no kubeconfig at all, as tmbox
// preflight does).
func supportKubeconfig(g *globalOptions, stateDir string) (kubeconfig string, createCluster bool) {
	if g.kubeconfig != "" || kubeconfigExists(g) {
		return g.kubeconfig, false
	}
	kind := (installer.Options{StateDir: stateDir}).KindProvider(nil).KubeconfigPath()
	if _, err := os.Stat(kind); err == nil {
		return kind, false
	}
	return "", true
}

// supportCluster makes the clients; a kubeconfig that cannot be read is
// the Cluster's Err (the host part is still collected).
func supportCluster(ctx context.Context, kubeconfig, kubeContext string) support.Cluster {
	c := support.Cluster{State: support.StateRef{Namespace: installer.StateNamespace, Name: installer.StateConfigMap, Key: stateKey}, LockName: installer.LockName}
	cfg, err := (&provider.Existing{Kubeconfig: kubeconfig, Context: kubeContext}).Ensure(ctx)
	if err != nil {
		c.Err = err
		return c
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = supportRequestTimeout
	cfg.WarningHandler = rest.NoWarnings{}
	c.Describe = cfg.Host
	if c.Client, err = kubernetes.NewForConfig(cfg); err == nil {
		c.Dynamic, err = dynamic.NewForConfig(cfg)
	}
	if err != nil {
		c.Client, c.Dynamic, c.Err = nil, nil, fmt.Errorf("cluster clients: %w", err)
	}
	return c
}

// supportOutput is what support-bundle -o json|yaml prints.
type supportOutput struct {
	File     string `json:"file"`
	Bytes    int64  `json:"bytes"`
	Files    int    `json:"files"`
	Redacted bool   `json:"redacted"`
	// Replaced counts the values redaction replaced.
	Replaced int                  `json:"replaced"`
	Cluster  support.ClusterIndex `json:"cluster"`
	// NotCollected names what failed besides the cluster being
	// unreachable.
	NotCollected []string `json:"notCollected,omitempty"`
}

// inspectSupportBundle prints a bundle's index (-o json|yaml: the index,
// the redaction report and the problems found).
func inspectSupportBundle(w io.Writer, file, output string) error {
	in, err := support.InspectFile(file)
	if err != nil {
		return err
	}
	if output != formatText {
		if err := writeStructured(w, output, map[string]any{"index": in.Index, "redactionReport": in.Report, "problems": in.Problems}); err != nil {
			return err
		}
		if len(in.Problems) > 0 {
			return errors.New("the bundle's index does not match its files")
		}
		return nil
	}
	ix := in.Index
	fmt.Fprintf(w, "Support bundle %s\n", file)
	fmt.Fprintf(w, "  created:  %s by tmbox %s\n", ix.Created.Format(time.RFC3339), versionOf(ix.Tmbox))
	if ix.Redacted {
		n, byRule := 0, map[string]int{}
		if in.Report != nil {
			for _, r := range in.Report.Redactions {
				n += r.Count
				byRule[r.Rule] += r.Count
			}
		}
		rules := make([]string, 0, len(byRule))
		for r, c := range byRule {
			rules = append(rules, fmt.Sprintf("%s %d", r, c))
		}
		sort.Strings(rules)
		line := fmt.Sprintf("yes, %d values replaced", n)
		if len(rules) > 0 {
			line += " (" + strings.Join(rules, ", ") + ")"
		}
		fmt.Fprintf(w, "  redacted: %s\n", line)
	} else {
		fmt.Fprintln(w, "  redacted: NO: this bundle holds the values of credentials it found")
	}
	cl := "reachable"
	if !ix.Cluster.Reachable {
		cl = "NOT reachable: " + ix.Cluster.Error
	}
	if ix.Cluster.Describe != "" {
		cl = ix.Cluster.Describe + ", " + cl
	}
	fmt.Fprintf(w, "  cluster:  %s\n", cl)
	fmt.Fprintf(w, "  bounds:   events and current logs since %s, the last %d lines of each log\n\n", ix.Since, ix.MaxLogLines)

	files := map[string]int64{}
	for _, f := range ix.Files {
		files[f.Collector] += f.Size
	}
	var rows [][]string
	for _, c := range ix.Collectors {
		rows = append(rows, []string{c.Name, string(c.Status), fmt.Sprint(c.Files), humanBytes(files[c.Name]), fmt.Sprintf("%.1fs", c.Seconds)})
	}
	if err := table(w, []string{"COLLECTOR", "STATUS", "FILES", "SIZE", "TIME"}, rows); err != nil {
		return err
	}
	last := ""
	for _, c := range ix.Collectors {
		switch {
		case c.Error != "" && c.Error == last:
			fmt.Fprintf(w, "  %s: (same reason)\n", c.Name)
		case c.Error != "":
			fmt.Fprintf(w, "  %s: %s\n", c.Name, c.Error)
		}
		last = c.Error
		for _, m := range c.Warnings {
			fmt.Fprintf(w, "  %s: warning: %s\n", c.Name, m)
		}
		for _, m := range c.Notes {
			fmt.Fprintf(w, "  %s: %s\n", c.Name, m)
		}
	}
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, f := range ix.Files {
		rows = append(rows, []string{f.Path, fmt.Sprint(f.Size), f.Collector})
	}
	if err := table(w, []string{"FILE", "BYTES", "COLLECTOR"}, rows); err != nil {
		return err
	}
	if len(in.Problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range in.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		return errors.New("the bundle's index does not match its files")
	}
	return nil
}

// versionOf is the version in an index's tmbox field.
func versionOf(v any) string {
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["version"].(string); ok {
			if c, ok := m["commit"].(string); ok && c != "" {
				return s + " (" + c + ")"
			}
			return s
		}
	}
	return "unknown"
}
