// Command tiny is the only program in the image TestEngine builds: no image
// can be pulled on these machines, so the test makes one from this static
// binary.
//
//	tiny caps         print this process's CapEff and CapBnd lines
//	tiny serve ADDR   answer every HTTP request with "tiny <hostname>"
//	tiny get URL      print the body of URL (retrying for 10 s)
//	tiny sleep        sleep until killed
package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tiny caps|serve ADDR|get URL|sleep")
		os.Exit(2)
	}
	// As PID 1 of a container a signal without a handler is ignored: exit on
	// SIGTERM so that stopping the container does not wait for SIGKILL.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-c; os.Exit(0) }()
	switch os.Args[1] {
	case "caps":
		f, err := os.Open("/proc/self/status")
		if err != nil {
			fail(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "CapEff:") || strings.HasPrefix(l, "CapBnd:") {
				fmt.Println(l)
			}
		}
	case "serve":
		host, _ := os.Hostname()
		err := http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "tiny %s", host)
		}))
		fail(err)
	case "get":
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(os.Args[2])
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Print(string(body))
				return
			}
			if time.Now().After(deadline) {
				fail(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	case "sleep":
		select {}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tiny:", err)
	os.Exit(1)
}
