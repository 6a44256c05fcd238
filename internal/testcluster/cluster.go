// Package testcluster runs a real Kubernetes control plane for tests on a
// machine without a container engine: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler as local processes, kwok faking
// nodes and driving pods to Running/Ready (Job pods to Succeeded), and a
// webhook stand-in that answers the admission webhooks of the real
// manifests.
//
// It runs only inside a network namespace that has nothing but loopback
// (hack/netns-exec): the apiserver dials webhook Service IPs and node
// addresses, and that traffic must never leave the machine.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// ServiceCIDR is the cluster's Service IP range. The webhook stand-in
	// makes it local on lo.
	ServiceCIDR = "10.96.0.0/16"
	// firstServiceIP is the kubernetes.default Service's ClusterIP.
	firstServiceIP = "10.96.0.1"
	// advertiseAddress is written into the kubernetes Endpoints only. It is
	// a documentation address (RFC 5737) and unreachable in the namespace.
	advertiseAddress = "192.0.2.1"
	// nodeIP is the address kwok gives its fake nodes; also unreachable.
	nodeIP = "192.0.2.10"
	// podCIDR is where kwok takes pod IPs from.
	podCIDR = "10.244.0.0/16"
	// KwokNodeAnnotation marks the nodes kwok manages.
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// Options configures a test cluster. The zero value is a usable cluster:
// one node with 32 CPUs and 64Gi of memory, and the webhook stand-in on.
type Options struct {
	// Nodes is the number of kwok nodes (default 1).
	Nodes int
	// NodeCPU, NodeMemory and NodePods are each node's allocatable
	// resources (defaults "32", "64Gi", "250").
	NodeCPU, NodeMemory, NodePods string
	// DisableWebhookStandIn starts the cluster without the stand-in; a
	// test can still enable it later through Cluster.WebhookStandIn.
	DisableWebhookStandIn bool
	// SharedWebhookStandIn makes a second cluster in the same network
	// namespace use another cluster's stand-in (there is one port 443).
	SharedWebhookStandIn *WebhookStandIn
	// NoLoadBalancer starts the cluster without the load-balancer stand-in:
	// LoadBalancer Services stay pending, as on a cluster with no
	// load-balancer implementation.
	NoLoadBalancer bool
	// BinDir holds the binaries (see hack/build-testcluster.sh). Default:
	// $TMBOX_TESTCLUSTER_BIN, else the script is run to build or find them.
	BinDir string
	// KeepDir keeps the temp dir (logs, certificates, etcd data) after Stop.
	KeepDir bool
	// StartTimeout bounds Start (default 2 minutes).
	StartTimeout time.Duration
	// ControllerManagerQPS and ControllerManagerBurst, when set, are the
	// controller-manager's client rate limit (--kube-api-qps and
	// --kube-api-burst) instead of Kubernetes' 20 and 30: the bench runs
	// its upgrade on a cluster configured as tmbox's kind clusters are,
	// and on the default.
	ControllerManagerQPS, ControllerManagerBurst int
}

func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.NodeCPU == "" {
		o.NodeCPU = "32"
	}
	if o.NodeMemory == "" {
		o.NodeMemory = "64Gi"
	}
	if o.NodePods == "" {
		o.NodePods = "250"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	return o
}

// Cluster is a running test cluster.
type Cluster struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file for Config.
	Kubeconfig string
	// Dir is the cluster's temp dir: logs, certificates, etcd data.
	Dir string
	// BinDir is where the cluster's binaries (and kubectl) are.
	BinDir string
	// WebhookStandIn answers admission and conversion webhooks.
	WebhookStandIn *WebhookStandIn

	opts        Options
	ca          *authority
	procs       []*process
	lb          *loadBalancerStandIn
	apiServer   string
	ownsStandIn bool
}

// Start starts a cluster and waits until it is usable: apiserver ready,
// nodes Ready, the default ServiceAccount present. On error everything
// already started is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	opts = opts.withDefaults()
	if err := checkLoopbackOnly(); err != nil {
		return nil, err
	}
	bins, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "tmbox-testcluster-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, BinDir: bins, opts: opts}
	defer func() {
		if err != nil {
			if stopErr := c.stop(true); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	if c.ca, err = newAuthority("tmbox-testcluster-ca"); err != nil {
		return c, err
	}
	if opts.SharedWebhookStandIn != nil {
		c.WebhookStandIn = opts.SharedWebhookStandIn
	} else {
		standInCA, err := newAuthority("tmbox-webhook-stand-in-ca")
		if err != nil {
			return c, err
		}
		c.WebhookStandIn = newWebhookStandIn(standInCA, ServiceCIDR)
		c.ownsStandIn = true
	}
	if err := c.writePKI(c.WebhookStandIn.ca); err != nil {
		return c, fmt.Errorf("write certificates: %w", err)
	}
	if c.ownsStandIn && !opts.DisableWebhookStandIn {
		if err := c.WebhookStandIn.Enable(); err != nil {
			return c, err
		}
	}
	if err := c.startEtcdAndAPIServer(ctx); err != nil {
		return c, err
	}
	if err := c.startControllers(); err != nil {
		return c, err
	}
	if err := c.createNodes(ctx); err != nil {
		return c, err
	}
	if err := c.waitUsable(ctx); err != nil {
		return c, err
	}
	if !opts.NoLoadBalancer {
		if c.lb, err = startLoadBalancerStandIn(c.Config); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) writePKI(standInCA *authority) error {
	serving, err := c.ca.issue(certSpec{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(firstServiceIP)},
		Server:     true,
	})
	if err != nil {
		return err
	}
	saPriv, saPub, err := newServiceAccountKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":           c.ca.certPEM,
		"apiserver.crt":    serving.CertPEM,
		"apiserver.key":    serving.KeyPEM,
		"sa.key":           saPriv,
		"sa.pub":           saPub,
		"webhook-ca.crt":   standInCA.certPEM,
		"kwok-stages.yaml": nil,
	}
	stages, err := kwokStages(c.BinDir)
	if err != nil {
		return err
	}
	files["kwok-stages.yaml"] = stages
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startEtcdAndAPIServer(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcd, err := startProcess(c.Dir, "etcd", filepath.Join(c.BinDir, "etcd"), []string{
		"--name=default",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--listen-metrics-urls=",
		"--unsafe-no-fsync",
		"--log-level=warn",
	}, cleanEnv())
	if err != nil {
		return err
	}
	c.procs = append(c.procs, etcd)
	if err := waitHTTP(ctx, etcd, &http.Client{Timeout: 2 * time.Second}, etcdURL+"/health"); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	c.apiServer = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	// SSL_CERT_FILE makes the webhook stand-in's CA the apiserver's system
	// pool: no upstream webhook configuration carries a caBundle.
	env := append(cleanEnv(), "SSL_CERT_FILE="+c.path("webhook-ca.crt"))
	api, err := startProcess(c.Dir, "kube-apiserver", filepath.Join(c.BinDir, "kube-apiserver"), []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--advertise-address=" + advertiseAddress,
		"--tls-cert-file=" + c.path("apiserver.crt"),
		"--tls-private-key-file=" + c.path("apiserver.key"),
		"--client-ca-file=" + c.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("sa.pub"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir=" + c.path("apiserver-certs"),
	}, env)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, api)

	admin, err := c.ca.issue(certSpec{CommonName: "tmbox-test-admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		return err
	}
	c.Config = c.restConfig(admin)
	if c.Kubeconfig, err = c.writeKubeconfig("admin", admin); err != nil {
		return err
	}
	tlsConf, err := rest.TLSConfigFor(c.Config)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	if err := waitHTTP(ctx, api, client, c.apiServer+"/readyz"); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

func (c *Cluster) startControllers() error {
	kc := c.Kubeconfig
	specs := []struct {
		name string
		args []string
	}{
		{"kube-controller-manager", append([]string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
			"--root-ca-file=" + c.path("ca.crt"),
			"--service-account-private-key-file=" + c.path("sa.key"),
			"--use-service-account-credentials=true",
			"--service-cluster-ip-range=" + ServiceCIDR,
		}, c.controllerManagerQPS()...)},
		{"kube-scheduler", []string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
		}},
		{"kwok", []string{
			"--kubeconfig=" + kc,
			"--config=" + c.path("kwok-stages.yaml"),
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
			"--cidr=" + podCIDR,
			"--node-ip=" + nodeIP,
			"--server-address=127.0.0.1:0",
			// kwok renews each node's Lease; without it the node lifecycle
			// controller marks the nodes NotReady after ~40 s (the lease
			// stage's status heartbeat is every 10 minutes).
			"--node-lease-duration-seconds=40",
		}},
	}
	for _, s := range specs {
		p, err := startProcess(c.Dir, s.name, filepath.Join(c.BinDir, s.name), s.args, cleanEnv())
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
	}
	return nil
}

func (c *Cluster) createNodes(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	res := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: c.opts.NodeCPU, corev1.ResourceMemory: c.opts.NodeMemory, corev1.ResourcePods: c.opts.NodePods,
	} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("node %s %q: %w", name, v, err)
		}
		res[name] = q
	}
	for i := range c.opts.Nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{KwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"type": "kwok",
				},
			},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

// controllerManagerQPS are the controller-manager's rate-limit flags, when
// Options.ControllerManagerQPS sets them.
func (c *Cluster) controllerManagerQPS() []string {
	var flags []string
	if q := c.opts.ControllerManagerQPS; q > 0 {
		flags = append(flags, fmt.Sprintf("--kube-api-qps=%d", q))
	}
	if b := c.opts.ControllerManagerBurst; b > 0 {
		flags = append(flags, fmt.Sprintf("--kube-api-burst=%d", b))
	}
	return flags
}

// waitUsable waits for every node to be Ready and for the default
// ServiceAccount (pods are refused before it exists).
func (c *Cluster) waitUsable(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	var last string
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if p := c.deadProcess(); p != nil {
			return false, fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.logTail(20))
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < c.opts.Nodes {
			last = fmt.Sprintf("%d of %d nodes Ready", ready, c.opts.Nodes)
			return false, nil
		}
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			if !apierrors.IsNotFound(err) {
				return false, err
			}
			last = "no default ServiceAccount yet"
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the cluster (%s): %w; logs in %s", last, err, c.Dir)
	}
	return nil
}

func (c *Cluster) deadProcess() *process {
	for _, p := range c.procs {
		if p.exited() {
			return p
		}
	}
	return nil
}

// Stop stops every process the cluster started and removes its temp dir
// (unless Options.KeepDir). It returns an error when a process is still
// running afterwards.
func (c *Cluster) Stop() error { return c.stop(c.opts.KeepDir) }

func (c *Cluster) stop(keep bool) error {
	var errs []error
	if c.lb != nil {
		c.lb.stop()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(10 * time.Second)
	}
	if c.WebhookStandIn != nil && c.ownsStandIn {
		if err := c.WebhookStandIn.Disable(); err != nil {
			errs = append(errs, err)
		}
	}
	if left := ProcessesUnder(c.Dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes still running after stop: %s", strings.Join(left, "; ")))
	}
	if !keep {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UserConfig returns a client configuration for a user that has no rights
// beyond what RBAC bindings in the cluster give that user or its groups: a
// client certificate with CN=user and O=groups.
func (c *Cluster) UserConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := c.ca.issue(certSpec{CommonName: user, Organizations: groups, Client: true})
	if err != nil {
		return nil, err
	}
	return c.restConfig(kp), nil
}

// ServerVersion returns the apiserver's version as reported by discovery.
func (c *Cluster) ServerVersion() (string, error) {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return "", err
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

func (c *Cluster) restConfig(kp keyPair) *rest.Config {
	return &rest.Config{
		Host: c.apiServer,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.ca.certPEM,
			CertData: kp.CertPEM,
			KeyData:  kp.KeyPEM,
		},
		QPS:   200,
		Burst: 400,
	}
}

func (c *Cluster) writeKubeconfig(name string, kp keyPair) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["tmbox-test"] = &clientcmdapi.Cluster{Server: c.apiServer, CertificateAuthorityData: c.ca.certPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts["tmbox-test"] = &clientcmdapi.Context{Cluster: "tmbox-test", AuthInfo: name}
	cfg.CurrentContext = "tmbox-test"
	path := c.path(name + ".kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200, failing early if p exits.
func waitHTTP(ctx context.Context, p *process, client *http.Client, url string) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("exited: %v\n%s", p.err, p.logTail(20))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s: %s", url, resp.Status)
			return false, nil
		}
		return true, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v); log %s", err, last, p.logPath)
	}
	return err
}

// cleanEnv is the environment for the cluster's processes: this process's,
// without proxy settings (webhook calls must never go to a proxy) and
// without SSL_CERT_FILE/DIR.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}
