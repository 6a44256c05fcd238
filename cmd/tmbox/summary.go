package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/tmbox/tmbox/installer"
)

// printIngress prints where functions are served and, when they cannot be
// reached from outside, why.
func printIngress(w io.Writer, urlPattern string, in *installer.Ingress) {
	if urlPattern != "" {
		fmt.Fprintf(w, "Functions: %s\n", urlPattern)
	} else {
		fmt.Fprintln(w, "Functions: reachable only inside the cluster (no domain set: tmbox configure --domain)")
	}
	if in == nil {
		return
	}
	addr := strings.Join(in.Addresses, ", ")
	switch {
	case in.HostAddress != "":
		addr = in.HostAddress + " (kind host port → node port " + fmt.Sprint(in.HTTPNodePort) + ")"
	case addr == "" && in.HTTPNodePort > 0:
		addr = fmt.Sprintf("node port %d (http), %d (https)", in.HTTPNodePort, in.HTTPSNodePort)
	}
	fmt.Fprintf(w, "Ingress:   %s %s %s\n", in.Service, in.Type, addr)
	if in.Problem != "" {
		fmt.Fprintf(w, "WARNING:   %s\n", in.Problem)
	}
}

// printNext prints the commands that deploy a first function and call it.
func printNext(w io.Writer, urlPattern string, in *installer.Ingress) {
	host := "hello.default.svc.cluster.local"
	if urlPattern != "" {
		_, rest, _ := strings.Cut(urlPattern, "://")
		rest, _, _ = strings.Cut(rest, ":")
		host = strings.NewReplacer("{name}", "hello", "{namespace}", "default").Replace(rest)
	}
	fmt.Fprintln(w, "Next: deploy a function and call it")
	fmt.Fprintln(w, "  kubectl apply -f - <<'EOF'")
	fmt.Fprintln(w, "  apiVersion: serving.knative.dev/v1")
	fmt.Fprintln(w, "  kind: Service")
	fmt.Fprintln(w, "  metadata: {name: hello, namespace: default}")
	fmt.Fprintln(w, "  spec:")
	fmt.Fprintln(w, "    template:")
	fmt.Fprintln(w, "      spec:")
	fmt.Fprintln(w, "        containers:")
	fmt.Fprintln(w, "        - image: ghcr.io/knative/helloworld-go:latest   # air-gapped: an image in your registry")
	fmt.Fprintln(w, "  EOF")
	fmt.Fprintln(w, "  kubectl wait ksvc/hello --for=condition=Ready --timeout=2m")
	switch {
	case in != nil && in.Endpoint != "":
		fmt.Fprintf(w, "  curl -H 'Host: %s' %s/\n", host, in.Endpoint)
	default:
		fmt.Fprintf(w, "  kubectl run curl --rm -it --restart=Never --image=curlimages/curl -- curl http://%s/\n", host)
	}
}
