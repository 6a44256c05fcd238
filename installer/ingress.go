package installer

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/manifests"
)

// The Istio ingress gateway Service functions are reached through.
const (
	gatewayNamespace = "istio-system"
	gatewayService   = "istio-ingressgateway"
)

// Ingress is where the appliance serves functions: the gateway Service,
// its addresses, and what to call.
type Ingress struct {
	// Service is the gateway Service, namespace/name.
	Service string `json:"service"`
	// Type is the Service's type (LoadBalancer, NodePort, ClusterIP).
	Type string `json:"type"`
	// Addresses are a LoadBalancer's IPs or host names.
	Addresses []string `json:"addresses,omitempty"`
	// HTTPNodePort and HTTPSNodePort are the node ports of ports 80 and
	// 443 (0 when there are none).
	HTTPNodePort  int32 `json:"httpNodePort,omitempty"`
	HTTPSNodePort int32 `json:"httpsNodePort,omitempty"`
	// HostAddress is, on a kind cluster tmbox made, the host address kind
	// maps to the gateway's HTTP node port ("127.0.0.1:80").
	HostAddress string `json:"hostAddress,omitempty"`
	// Endpoint is what a client calls with the function's Host header:
	// http://ADDRESS ("" when nothing outside the cluster reaches it).
	Endpoint string `json:"endpoint,omitempty"`
	// Problem says why functions cannot be reached from outside ("" when
	// they can): a LoadBalancer still pending, a missing Service.
	Problem string `json:"problem,omitempty"`
}

// ingressOf reads the gateway Service. hostAddress is the kind host
// address the state recorded ("" for an existing cluster).
func ingressOf(ctx context.Context, client kubernetes.Interface, hostAddress string) Ingress {
	in := Ingress{Service: gatewayNamespace + "/" + gatewayService, HostAddress: hostAddress}
	svc, err := client.CoreV1().Services(gatewayNamespace).Get(ctx, gatewayService, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			in.Problem = "the gateway Service " + in.Service + " does not exist"
		} else {
			in.Problem = fmt.Sprintf("cannot read the gateway Service %s: %v", in.Service, err)
		}
		return in
	}
	in.Type = string(svc.Spec.Type)
	for _, p := range svc.Spec.Ports {
		switch p.Port {
		case 80:
			in.HTTPNodePort = p.NodePort
		case 443:
			in.HTTPSNodePort = p.NodePort
		}
	}
	for _, lb := range svc.Status.LoadBalancer.Ingress {
		if lb.IP != "" {
			in.Addresses = append(in.Addresses, lb.IP)
		} else if lb.Hostname != "" {
			in.Addresses = append(in.Addresses, lb.Hostname)
		}
	}
	switch {
	case hostAddress != "":
		in.Endpoint = "http://" + hostAddress
	case len(in.Addresses) > 0:
		in.Endpoint = "http://" + in.Addresses[0]
	case svc.Spec.Type == corev1.ServiceTypeLoadBalancer:
		in.Problem = "the gateway Service " + in.Service + " is a LoadBalancer still waiting for an address: the cluster has no LoadBalancer implementation answering (install one such as MetalLB, or tmbox configure --gateway-type NodePort)"
	case svc.Spec.Type == corev1.ServiceTypeNodePort && in.HTTPNodePort > 0:
		in.Endpoint = "http://NODE-ADDRESS:" + strconv.Itoa(int(in.HTTPNodePort))
	default:
		in.Problem = "the gateway Service " + in.Service + " is " + in.Type + ": functions are reachable only inside the cluster"
	}
	return in
}

// kindHostAddress is the host address kind maps port 80 of the gateway
// to ("" when none is mapped).
func kindHostAddress(listen string, httpPort int) string {
	if httpPort <= 0 {
		return ""
	}
	return net.JoinHostPort(listen, strconv.Itoa(httpPort))
}

// gatewayProbeEvery is how often the verify phase asks the gateway, and
// gatewayProbeReportEvery how often it says it is still waiting.
const (
	gatewayProbeEvery       = 500 * time.Millisecond
	gatewayProbeReportEvery = 10 * time.Second
)

// probeAddress is the host address the verify phase calls the gateway on,
// on a kind cluster tmbox made ("" otherwise: on an existing cluster tmbox
// cannot tell which address its users reach, nor without a host port):
// the address the state recorded when tmbox laid the cluster down, or,
// on the run laying it down, the one its kind config maps; loopback for
// an unspecified listen address.
func (e *env) probeAddress() string {
	addr := ""
	switch {
	case e.state != nil && e.state.KindCluster != "":
		addr = e.state.HostAddress
	case e.kind != nil:
		addr = kindHostAddress(e.kind.Config.ListenAddress, e.kind.Config.HTTPPort)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(reachableHost(host), port)
}

// waitGatewayAnswers waits, within the phase timeout, until an HTTP GET
// on addr gets an answer from the gateway, whatever its status (with no
// function deployed Istio's gateway answers 404): the path from the host
// port through kind's mapping, the node port and the Service to a gateway
// pod works. It returns the status, or why nothing answered.
func (e *env) waitGatewayAnswers(ctx context.Context, addr string) (string, error) {
	client := &http.Client{
		// The host port is this machine's: never through a proxy.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect to HTTPS is an answer
		},
	}
	url := "http://" + addr + "/"
	var status, last string
	reported := time.Now()
	err := wait.PollUntilContextTimeout(ctx, gatewayProbeEvery, e.opts.PhaseTimeout, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			if time.Since(reported) >= gatewayProbeReportEvery {
				reported = time.Now()
				e.report(Event{Type: EventWaiting, Phase: PhaseVerify, Message: "the ingress gateway on " + url + ": " + last})
			}
			return false, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		status = resp.Status
		return true, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("the ingress gateway does not answer on %s within %s (host port → kind node port %d → Service %s/%s → gateway pod): %s", url, e.opts.PhaseTimeout, manifests.IngressHTTPNodePort, gatewayNamespace, gatewayService, last)
	}
	return status, nil
}
