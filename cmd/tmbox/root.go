package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Output goes to out and errOut, never
// to the process's streams directly, so tests can capture it.
func newRootCmd(out, errOut io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tmbox",
		Short: "Install and upgrade Istio, Knative and TriggerMesh as one pinned appliance",
		Long: `tmbox turns a Linux host (via kind) or an existing Kubernetes cluster into a
serverless appliance: pinned Istio, Knative Serving + Eventing + net-istio and the
TriggerMesh stack, upgraded in lockstep with Knative releases.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newVersionCmd())
	return root
}

// noArgs is cobra.NoArgs reported as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return &usageError{err}
	}
	return nil
}
