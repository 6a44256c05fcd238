package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
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

// componentNamespaces are the namespaces each component's pods run in
// (the upstream manifests'). Pods carry none of tmbox's labels (only the
// objects tmbox applies do), so the summary lists pods by namespace.
func componentNamespaces() map[string]string {
	return map[string]string{
		catalog.Istio:           "istio-system",
		catalog.KnativeServing:  "knative-serving",
		catalog.NetIstio:        "knative-serving",
		catalog.KnativeEventing: "knative-eventing",
		catalog.TriggerMesh:     "triggermesh",
		catalog.TriggerMeshCore: "triggermesh",
	}
}

// summaryNext is the wizard summary's next commands, each one a shell
// can run as written: the status, the installed components' pods, an
// upgrade. The cluster is kubeconfig (a kind cluster tmbox made: exported
// first) or kcFlag (" --kubeconfig FILE --context NAME", or "").
func summaryNext(kubeconfig, kcFlag string, installed []tui.Component) []string {
	var namespaces []string
	for _, c := range installed {
		if ns := componentNamespaces()[c.Name]; ns != "" && !slices.Contains(namespaces, ns) {
			namespaces = append(namespaces, ns)
		}
	}
	var next []string
	if kubeconfig != "" {
		next = append(next, "export KUBECONFIG="+kubeconfig)
	}
	next = append(next, "tmbox status"+kcFlag)
	if len(namespaces) > 0 {
		next = append(next, "kubectl"+kcFlag+" get pods -A | grep -E '^(NAMESPACE|"+strings.Join(namespaces, "|")+") '")
	}
	return append(next, "tmbox upgrade --to RELEASE"+kcFlag+"   # tmbox versions lists the releases")
}
