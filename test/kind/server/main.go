// Command server is the workload of the kind tests' releases: a static
// HTTP server on :8080 answering "$MSG $HOSTNAME", or, with -get URL, a
// client that fetches URL (retrying for a minute) and prints the body.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	get := flag.String("get", "", "fetch this URL, print the body and exit")
	flag.Parse()
	if *get != "" {
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(*get)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					fmt.Print(string(body))
					return
				}
				err = fmt.Errorf("%s: %s", resp.Status, body)
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			time.Sleep(time.Second)
		}
	}
	host, _ := os.Hostname()
	msg := os.Getenv("MSG")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s\n", msg, host) })
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
