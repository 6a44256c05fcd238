package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/preflight"
)

func newPreflightCmd(g *globalOptions) *cobra.Command {
	p := &installer.Preflight{}
	var pf platformFlags
	var output string
	var fix, yes bool
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Check the host and the cluster before installing",
		Long: `Run the checks tmbox install runs first, and change nothing.

The target is the cluster of --kubeconfig/--context (or $KUBECONFIG, or
~/.kube/config). With --create-cluster, or when no kubeconfig exists at all,
the target is a kind cluster on this host, and the host is checked for it.

Checks: ` + strings.Join(preflight.CheckNames(), ", ") + `.
A failed check exits with code 3; --ignore-preflight-errors turns named
failures into warnings. See docs/preflight.md.`,
		Example: `  tmbox preflight
  tmbox preflight --kubeconfig ~/.kube/prod --release 1.23 -o json
  tmbox preflight --create-cluster --fix`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p.CatalogFile, p.Kubeconfig, p.Context = g.catalogFile, g.kubeconfig, g.context
			p.Platform = pf.settings(cmd.Flags(), g.platform)
			p.Logger = g.logger(cmd.ErrOrStderr())
			if !cmd.Flags().Changed("create-cluster") && !kubeconfigExists(g) {
				// Say which target is checked: without a kubeconfig it is
				// this host, for the kind cluster install would create.
				p.CreateCluster = true
				fmt.Fprintf(cmd.ErrOrStderr(), "no kubeconfig found (looked in %s): checking this host for a kind cluster (what tmbox install --create-cluster needs); pass --kubeconfig FILE or --context NAME to check an existing cluster\n", provider.LookedIn(""))
			}
			if err := p.Validate(); err != nil {
				return &usageError{err}
			}
			rep, err := p.Run(cmd.Context())
			if err != nil {
				return err
			}
			if fix {
				if rep, err = applyFixes(cmd, p, rep, yes); err != nil {
					return err
				}
			}
			if err := printReport(cmd, output, p, rep); err != nil {
				return err
			}
			return rep.Err()
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Release, "release", "", "release to check for (default: the latest)")
	f.StringVar(&p.Mirror, "mirror", "", "read manifests from this directory instead of downloading them")
	f.StringSliceVar(&p.Components, "components", nil, "components to check for (default all)")
	addPreflightFlags(f, &p.Options)
	addKindFlags(f, &p.Options)
	addPlatformFlags(f, &pf)
	f.BoolVar(&fix, "fix", false, "apply the safe remedies of failed host checks (e.g. inotify limits), after confirmation")
	f.BoolVarP(&yes, "yes", "y", false, "with --fix, do not ask for confirmation")
	outputFlag(cmd, &output, allFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	return cmd
}

// addPreflightFlags adds the flags that tune preflight checks.
func addPreflightFlags(f *pflag.FlagSet, o *installer.Options) {
	f.StringSliceVar(&o.IgnorePreflightErrors, "ignore-preflight-errors", nil, "checks whose failures are only warnings (names, or all)")
	f.DurationVar(&o.PreflightTimeout, "preflight-timeout", 0, "time budget of each preflight check (default 5s)")
}

// addKindFlags adds the flags of a kind cluster tmbox creates.
func addKindFlags(f *pflag.FlagSet, o *installer.Options) {
	f.BoolVar(&o.CreateCluster, "create-cluster", false, "create a kind cluster on this host (or reuse the one named --cluster-name)")
	f.StringVar(&o.Kind.Name, "cluster-name", "", "kind cluster name (default tmbox)")
	f.IntVar(&o.Kind.Workers, "workers", 0, "kind worker nodes besides the control plane")
	f.StringVar(&o.Kind.ListenAddress, "listen-address", "", "host address the kind cluster's ports are mapped on (default 127.0.0.1)")
	f.IntVar(&o.Kind.HTTPPort, "http-port", 0, "host port mapped to the ingress gateway's HTTP port (default 80; -1 for none)")
	f.IntVar(&o.Kind.HTTPSPort, "https-port", 0, "host port mapped to the ingress gateway's HTTPS port (default 443; -1 for none)")
	f.IntVar(&o.Kind.APIServerPort, "api-port", 0, "host port of the kind API server (default: a free port)")
	f.StringVar(&o.StateDir, "state-dir", "", "where tmbox keeps a created cluster's kubeconfig (default ~/.local/state/tmbox)")
	f.BoolVar(&o.MergeKubeconfig, "merge-kubeconfig", false, "also merge a created cluster's kubeconfig into ~/.kube/config")
}

// kubeconfigExists reports whether any kubeconfig is configured: the flag,
// $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
func kubeconfigExists(g *globalOptions) bool {
	if g.kubeconfig != "" || g.context != "" {
		return true
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	for _, path := range rules.GetLoadingPrecedence() {
		if _, err := os.Stat(path); err == nil {
			return true
		}
	}
	return os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// applyFixes shows the fixes of failed or warned checks, applies them
// after confirmation, and re-runs the checks.
func applyFixes(cmd *cobra.Command, p *installer.Preflight, rep *installer.PreflightReport, yes bool) (*installer.PreflightReport, error) {
	var fixes []preflight.Result
	for _, r := range rep.Results {
		if r.Fix != nil && r.Status != preflight.StatusPass {
			fixes = append(fixes, r)
		}
	}
	w := cmd.ErrOrStderr()
	if len(fixes) == 0 {
		fmt.Fprintln(w, "no check has a fix tmbox can apply")
		return rep, nil
	}
	for _, r := range fixes {
		fmt.Fprintf(w, "%s: %s\n", r.Name, r.Fix.Description)
		for _, c := range r.Fix.Changes {
			fmt.Fprintf(w, "  - %s\n", c)
		}
	}
	if err := confirm(cmd, yes, "Apply these changes?"); err != nil {
		return rep, err
	}
	var errs []error
	for _, r := range fixes {
		if err := r.Fix.Apply(cmd.Context()); err != nil {
			errs = append(errs, fmt.Errorf("fix %s: %w", r.Name, err))
		} else {
			fmt.Fprintf(w, "fixed %s\n", r.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	return p.Run(cmd.Context())
}

// preflightOutput is `tmbox preflight -o json`'s document.
type preflightOutput struct {
	Release string             `json:"release"`
	Target  string             `json:"target"`
	Passed  bool               `json:"passed"`
	Results []preflight.Result `json:"results"`
}

func printReport(cmd *cobra.Command, output string, p *installer.Preflight, rep *installer.PreflightReport) error {
	target := "existing cluster"
	if p.CreateCluster {
		target = "kind cluster " + p.KindConfig().Name + " on this host"
	}
	if output != formatText {
		return writeStructured(cmd.OutOrStdout(), output, preflightOutput{Release: rep.Release, Target: target, Passed: rep.Err() == nil, Results: rep.Results})
	}
	var rows [][]string
	for _, r := range rep.Results {
		status := string(r.Status)
		if r.Ignored {
			status += " (ignored)"
		}
		rows = append(rows, []string{r.Name, string(r.Category), status, r.Message})
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Release %s, target: %s\n\n", rep.Release, target)
	if err := table(w, []string{"CHECK", "CATEGORY", "STATUS", "MESSAGE"}, rows); err != nil {
		return err
	}
	first := true
	for _, r := range rep.Results {
		if r.Status == preflight.StatusPass || r.Status == preflight.StatusSkip || r.Remediation == "" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nTo fix:")
			first = false
		}
		fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Remediation)
	}
	return nil
}
