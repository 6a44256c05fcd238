package testcluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// LoadBalancerAddressPrefix is the first three octets of the addresses
// the load-balancer stand-in gives: 127.0.0.0/8, so nothing anywhere is
// ever sent to them.
const LoadBalancerAddressPrefix = "127.0.0."

// loadBalancerStandIn is what a cloud's (or MetalLB's) load-balancer
// controller does for the status of LoadBalancer Services, and nothing
// else: it gives each one an address (127.0.0.200 onwards) so clients see
// an allocated load balancer. Traffic is not routed anywhere.
type loadBalancerStandIn struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startLoadBalancerStandIn polls the cluster's Services until stopped.
func startLoadBalancerStandIn(cfg *rest.Config) (*loadBalancerStandIn, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	lb := &loadBalancerStandIn{cancel: cancel}
	lb.done.Add(1)
	go func() {
		defer lb.done.Done()
		next := 200
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			list, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range list.Items {
					svc := &list.Items[i]
					if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) > 0 {
						continue
					}
					svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("%s%d", LoadBalancerAddressPrefix, next)}}
					if _, err := cs.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err == nil && next < 254 {
						next++
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return lb, nil
}

// stop ends the stand-in and waits for it.
func (lb *loadBalancerStandIn) stop() {
	lb.cancel()
	lb.done.Wait()
}
