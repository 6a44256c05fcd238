// Command testcluster starts a test cluster and keeps it running until it is
// sent SIGINT or SIGTERM (make cluster-up / cluster-down). It must run in a
// loopback-only network namespace (hack/netns-exec).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/tmbox/tmbox/internal/testcluster"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "copy the admin kubeconfig here once the cluster is ready")
		pidfile    = flag.String("pidfile", "", "write this process's pid here")
		nodes      = flag.Int("nodes", 1, "number of kwok nodes")
		cpu        = flag.String("node-cpu", "32", "allocatable CPU per node")
		memory     = flag.String("node-memory", "64Gi", "allocatable memory per node")
		noStandIn  = flag.Bool("no-webhook-stand-in", false, "do not answer admission webhooks")
	)
	flag.Parse()
	if err := run(*kubeconfig, *pidfile, testcluster.Options{
		Nodes: *nodes, NodeCPU: *cpu, NodeMemory: *memory, DisableWebhookStandIn: *noStandIn,
	}); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, pidfile string, opts testcluster.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if pidfile != "" {
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(pidfile)
	}
	c, err := testcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	v, _ := c.ServerVersion()
	fmt.Printf("test cluster %s up in %s\n", v, c.Dir)
	if kubeconfig != "" {
		data, err := os.ReadFile(c.Kubeconfig)
		if err == nil {
			err = os.WriteFile(kubeconfig, data, 0o600)
		}
		if err != nil {
			return fmt.Errorf("%w (cluster stop: %v)", err, c.Stop())
		}
	}
	<-ctx.Done()
	fmt.Println("stopping test cluster")
	return c.Stop()
}
