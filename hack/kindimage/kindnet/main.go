// Command kindnetd is a small stand-in for kind's default CNI daemon
// (kindnetd, whose Go module the module proxy does not serve), for tmbox's
// kind node image (hack/kindimage). It runs as a hostNetwork DaemonSet pod
// on every node and, every few seconds:
//
//   - writes /etc/cni/net.d/10-kindnet.conflist for the node's podCIDR: a
//     bridge (cni0, the pods' gateway) with host-local IPAM and portmap;
//   - routes every other node's podCIDR via that node's InternalIP;
//   - masquerades pod traffic leaving the cluster's pod subnet (POD_SUBNET),
//     so pods can reach other containers on the kind network.
//
// It reads the Node objects with its service account (list nodes), from
// CONTROL_PLANE_ENDPOINT (host:port, which kind adds to the manifest) when
// set, else KUBERNETES_SERVICE_HOST/PORT. NODE_NAME names its own node.
// IPv4 only. Network policies, IPv6 and node removal are not handled.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	saDir      = "/var/run/secrets/kubernetes.io/serviceaccount"
	cniDir     = "/etc/cni/net.d"
	cniFile    = "10-kindnet.conflist"
	syncPeriod = 3 * time.Second
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := newDaemon()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("kindnetd (tmbox): node %s, pod subnet %s, API %s", d.node, d.podSubnet, d.api)
	for {
		if err := d.sync(ctx); err != nil {
			log.Printf("sync: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(syncPeriod):
		}
	}
}

// daemon is the state between syncs.
type daemon struct {
	node      string
	podSubnet netip.Prefix
	api       string
	client    *http.Client
	routes    map[netip.Prefix]netip.Addr // routes installed, by pod CIDR
	conf      []byte                      // the conflist last written
	masq      bool
}

func newDaemon() (*daemon, error) {
	d := &daemon{node: os.Getenv("NODE_NAME"), routes: map[netip.Prefix]netip.Addr{}}
	if d.node == "" {
		return nil, errors.New("NODE_NAME is not set")
	}
	if s := os.Getenv("POD_SUBNET"); s != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("POD_SUBNET: %w", err)
		}
		d.podSubnet = p.Masked()
	}
	d.api = os.Getenv("CONTROL_PLANE_ENDPOINT")
	if d.api == "" {
		d.api = net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("no certificate in the service account's ca.crt")
	}
	d.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	return d, nil
}

// node is the part of a Node object the daemon reads.
type node struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR  string   `json:"podCIDR"`
		PodCIDRs []string `json:"podCIDRs"`
	} `json:"spec"`
	Status struct {
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
	} `json:"status"`
}

// ipv4 returns the node's IPv4 pod CIDR and InternalIP, when it has both.
func (n node) ipv4() (netip.Prefix, netip.Addr, bool) {
	var cidr netip.Prefix
	for _, s := range append([]string{n.Spec.PodCIDR}, n.Spec.PodCIDRs...) {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
			cidr = p.Masked()
			break
		}
	}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == "InternalIP" && ip.Is4() {
			return cidr, ip, cidr.IsValid()
		}
	}
	return cidr, netip.Addr{}, false
}

func (d *daemon) nodes(ctx context.Context) ([]node, error) {
	token, err := os.ReadFile(filepath.Join(saDir, "token")) // rotated: read each time
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+d.api+"/api/v1/nodes", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list nodes: %s", resp.Status)
	}
	var list struct {
		Items []node `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return list.Items, nil
}

func (d *daemon) sync(ctx context.Context) error {
	list, err := d.nodes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range list {
		cidr, ip, ok := n.ipv4()
		if n.Metadata.Name == d.node {
			if cidr.IsValid() {
				errs = append(errs, d.writeConf(cidr))
			}
			continue
		}
		if !ok || d.routes[cidr] == ip {
			continue
		}
		if err := routeReplace(cidr, ip); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", cidr, ip, err))
			continue
		}
		log.Printf("route %s via %s (node %s)", cidr, ip, n.Metadata.Name)
		d.routes[cidr] = ip
	}
	if !d.masq && d.podSubnet.IsValid() {
		if err := masquerade(d.podSubnet); err != nil {
			errs = append(errs, fmt.Errorf("masquerade: %w", err))
		} else {
			d.masq = true
		}
	}
	return errors.Join(errs...)
}

// conflist is the CNI configuration for a node's pod CIDR.
func conflist(cidr netip.Prefix) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      "cni0",
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"ranges":  [][]map[string]string{{{"subnet": cidr.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

func (d *daemon) writeConf(cidr netip.Prefix) error {
	b, err := conflist(cidr)
	if err != nil || bytes.Equal(b, d.conf) {
		return err
	}
	path := filepath.Join(cniDir, cniFile)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, b) {
		d.conf = b
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d.conf = b
	log.Printf("wrote %s for pod CIDR %s", path, cidr)
	return nil
}

// masquerade makes traffic from the pod subnet to anything outside it (and
// not local to the node) leave with the node's address.
func masquerade(podSubnet netip.Prefix) error {
	rule := []string{"POSTROUTING", "-s", podSubnet.String(), "!", "-d", podSubnet.String(),
		"-m", "addrtype", "!", "--dst-type", "LOCAL", "-m", "comment", "--comment", "kindnet masquerade", "-j", "MASQUERADE"}
	iptables := func(op string) ([]byte, error) {
		return exec.Command("iptables", append([]string{"-w", "5", "-t", "nat", op}, rule...)...).CombinedOutput()
	}
	if _, err := iptables("-C"); err == nil {
		return nil
	}
	if out, err := iptables("-A"); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	log.Printf("masquerading pod traffic leaving %s", podSubnet)
	return nil
}
