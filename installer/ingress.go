package installer

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
