package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/installer"
)

func newStatusCmd(g *globalOptions) *cobra.Command {
	var output, mirror string
	var watch time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the installed release and each component's health; exit 1 when unhealthy",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch < 0 {
				return &usageError{fmt.Errorf("--watch %s is negative", watch)}
			}
			get := &installer.GetStatus{Kubeconfig: g.kubeconfig, Context: g.context, Mirror: mirror, CatalogFile: g.catalogFile}
			if watch > 0 {
				// Refresh until Ctrl-C: each round is a full status (one
				// GetStatus: the release renders once); the last one's
				// verdict is the exit code.
				for {
					err := statusOnce(cmd, get, output)
					select {
					case <-cmd.Context().Done():
						return err
					case <-time.After(watch):
					}
					fmt.Fprintf(cmd.OutOrStdout(), "\n--- %s\n", time.Now().Format(time.TimeOnly))
				}
			}
			return statusOnce(cmd, get, output)
		},
	}
	outputFlag(cmd, &output, allFormats()...)
	cmd.Flags().StringVar(&mirror, "mirror", "", "read the release's manifests from this directory for the drift check (default: tmbox's download cache)")
	cmd.Flags().DurationVar(&watch, "watch", 0, "refresh every DURATION (e.g. 5s) until Ctrl-C")
	cmd.Flags().Lookup("watch").NoOptDefVal = "5s"
	return cmd
}

// statusOnce prints the status once; an error when it is unhealthy.
func statusOnce(cmd *cobra.Command, get *installer.GetStatus, output string) error {
	st, err := get.Run(cmd.Context())
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if output != formatText {
		if err := writeStructured(w, output, st); err != nil {
			return err
		}
	} else if st.Release == "" && len(st.Components) == 0 {
		fmt.Fprintln(w, "No tmbox release is installed on this cluster.")
	} else {
		health := "healthy"
		if !st.Healthy {
			health = "UNHEALTHY"
		}
		if st.Release == "" {
			// A first install that did not finish: say which.
			line := "No release yet"
			if op := st.LastOperation; op != nil {
				line += fmt.Sprintf(": %s %s", op.ID, op.Result)
				if n := len(op.Phases); n > 0 {
					line += " after phase " + op.Phases[n-1].Name
				}
				line += "; re-run tmbox install to converge"
			}
			fmt.Fprintln(w, line)
		} else {
			fmt.Fprintf(w, "Release %s: %s\n", st.Release, health)
		}
		var rows [][]string
		for _, c := range st.Components {
			h := "healthy"
			if !c.Healthy {
				h = "unhealthy"
			}
			rows = append(rows, []string{c.Name, c.Version, fmt.Sprint(c.Workloads), h})
		}
		_ = table(w, []string{"COMPONENT", "VERSION", "WORKLOADS", "HEALTH"}, rows)
		for _, c := range st.Components {
			for _, p := range c.Problems {
				fmt.Fprintf(w, "  %s: %s\n", c.Name, p)
			}
		}
		printPlatform(w, st)
		printOverlay(w, st)
		if st.DriftUnchecked != "" {
			fmt.Fprintln(w, "Note: "+st.DriftUnchecked)
		}
		if st.Lock != nil {
			fmt.Fprintf(w, "Lock: held by %s (renewed %s ago)\n", st.Lock, time.Since(st.Lock.Renewed).Round(time.Second))
		}
		if op := st.LastOperation; op != nil {
			line := fmt.Sprintf("Last operation: %s %s", op.ID, op.Result)
			if op.Error != "" {
				line += ": " + op.Error
			}
			fmt.Fprintln(w, line)
		}
	}
	if !st.Healthy {
		if st.Release == "" && len(st.Components) == 0 {
			return errors.New("nothing installed")
		}
		var bad []string
		for _, c := range st.Components {
			if !c.Healthy {
				bad = append(bad, c.Name)
			}
		}
		if st.Ingress != nil && st.Ingress.Problem != "" {
			bad = append(bad, "ingress ("+st.Ingress.Problem+")")
		}
		return fmt.Errorf("unhealthy: %s", strings.Join(append(bad, unfinished(st)...), ", "))
	}
	return nil
}

func unfinished(st *installer.Status) []string {
	if op := st.LastOperation; op != nil && op.Result != installer.ResultSucceeded {
		return []string{"operation " + op.ID + " " + op.Result}
	}
	return nil
}

// printPlatform prints where functions live and the settings in effect.
func printPlatform(w io.Writer, st *installer.Status) {
	if st.Release != "" {
		printIngress(w, st.URLPattern, st.Ingress)
	}
	p := st.Platform
	if p == nil {
		return
	}
	var set []string
	if p.Domain != "" {
		set = append(set, "domain "+p.Domain)
	}
	if p.TLS != nil {
		set = append(set, "tls "+p.TLS.CertFile)
	}
	if r := p.Registry; r != nil {
		if r.PullSecret != "" {
			set = append(set, "pull secret "+r.PullSecret)
		}
		if r.CAFile != "" {
			set = append(set, "registry CA "+r.CAFile)
		}
	}
	if p.HighAvailability != nil {
		set = append(set, fmt.Sprintf("%d replicas (HA)", p.HighAvailability.Replicas))
	}
	if n := len(p.Config); n > 0 {
		set = append(set, fmt.Sprintf("%d ConfigMaps set", n))
	}
	if n := len(p.Workloads); n > 0 {
		set = append(set, fmt.Sprintf("%d workloads overridden", n))
	}
	if p.Gateway != nil && p.Gateway.Type != "" {
		set = append(set, "gateway "+p.Gateway.Type)
	}
	if len(set) > 0 {
		fmt.Fprintf(w, "Settings: %s\n", strings.Join(set, ", "))
	}
}

// printOverlay says which Istio overlay the release runs with.
func printOverlay(w io.Writer, st *installer.Status) {
	if o := st.IstioOverlay; o != nil {
		fmt.Fprintf(w, "Istio overlay: %s (sha256 %s, kept in ConfigMap istio-system/%s)\n", o.File, o.SHA256[:min(12, len(o.SHA256))], installer.OverlayConfigMap)
	}
}
