// Ristretto's side of the "Throughput — Read / Write / Mixed (Zipfian)" charts: N goroutines on one
// ristretto cache (dgraph-io/ristretto, as Debian packages it), in throughput_bench's shape
// (native/bench/throughput.cc), so bench/throughput.ts draws it beside gravity.
//
//	ristretto-throughput --trace FILE --workload read|write|mixed --threads N [--seconds S] [--value-bytes B]
//
// The trace is one key per line (written by bench/workloads.ts). The cache is first filled with
// every distinct key (cost 1 each, MaxCost twice the distinct keys, so nothing is evicted), waiting
// until every key reads back: ristretto applies sets later on its own goroutine and may drop them.
// Then each goroutine walks the trace from its own offset, as the C++ threads do:
//
//	read  — every op is a Get and a copy of the value out
//	write — every op is a Set of the key's value (ristretto keeps the reference; a dropped Set counts)
//	mixed — one op in four is a Set, the rest Gets
//
// Keys and the value are boxed into interface{} once, so the loop allocates only what ristretto
// allocates itself. Concurrency is goroutines on GOMAXPROCS (all CPUs), ristretto's own setting.
// Prints one JSON line: {"workload","threads","policy":"ristretto","valueBytes","ops","seconds","mops","hits","gets"}.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ristretto-throughput: "+format+"\n", args...)
	os.Exit(2)
}

// readKeys returns the trace as indexes into its distinct keys, boxed once.
func readKeys(path string) (trace []int32, keys []interface{}) {
	f, err := os.Open(path)
	if err != nil {
		die("%v", err)
	}
	defer f.Close()
	ids := map[string]int32{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimRight(scanner.Text(), "\r")
		if line == "" {
			continue
		}
		id, ok := ids[line]
		if !ok {
			id = int32(len(keys))
			ids[line] = id
			keys = append(keys, line)
		}
		trace = append(trace, id)
	}
	if err := scanner.Err(); err != nil {
		die("reading %s: %v", path, err)
	}
	if len(trace) == 0 {
		die("trace %s is empty", path)
	}
	return trace, keys
}

// fill sets every key and waits until each one reads back (ristretto may drop a buffered Set).
func fill(cache *ristretto.Cache, keys []interface{}, value interface{}) {
	missing := keys
	for round := 0; len(missing) > 0; round++ {
		if round == 1000 {
			die("%d keys still not stored after %d rounds of sets", len(missing), round)
		}
		for _, k := range missing {
			cache.Set(k, value, 1)
		}
		time.Sleep(10 * time.Millisecond)
		var still []interface{}
		for _, k := range missing {
			if _, ok := cache.Get(k); !ok {
				still = append(still, k)
			}
		}
		missing = still
	}
}

func main() {
	path := flag.String("trace", "", "trace file, one key per line")
	workload := flag.String("workload", "read", "read | write | mixed")
	threads := flag.Int("threads", 1, "goroutines")
	seconds := flag.Float64("seconds", 1, "length of the run")
	valueBytes := flag.Int("value-bytes", 16, "value size")
	flag.Parse()
	if *path == "" {
		die("--trace is required")
	}
	writeEvery := map[string]uint64{"read": 0, "write": 1, "mixed": 4}
	every, ok := writeEvery[*workload]
	if !ok {
		die("--workload must be read, write or mixed")
	}
	if *threads < 1 || *threads > 256 {
		die("--threads must be in [1, 256]")
	}
	if !(*seconds > 0) {
		die("--seconds must be positive")
	}
	if *valueBytes < 1 || *valueBytes > 65536 {
		die("--value-bytes must be in [1, 65536]")
	}

	trace, keys := readKeys(*path)
	cache, err := ristretto.NewCache(&ristretto.Config{
		NumCounters: 10 * int64(len(keys)), // ristretto's advice: 10x the items held when full
		MaxCost:     2 * int64(len(keys)),
		BufferItems: 64, // ristretto's advice
	})
	if err != nil {
		die("%v", err)
	}
	defer cache.Close()
	var value interface{} = make([]byte, *valueBytes)
	fill(cache, keys, value)

	var stop int32
	var ready, hitsTotal, getsTotal, opsTotal int64
	var wg sync.WaitGroup
	for t := 0; t < *threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			out := make([]byte, *valueBytes)
			i := len(trace) / *threads * t
			var done, hits, gets uint64
			atomic.AddInt64(&ready, 1)
			for atomic.LoadInt64(&ready) < int64(*threads) {
				runtime.Gosched()
			}
			for atomic.LoadInt32(&stop) == 0 {
				for batch := 0; batch < 256; batch++ {
					key := keys[trace[i]]
					if i++; i == len(trace) {
						i = 0
					}
					if every != 0 && done%every == 0 {
						cache.Set(key, value, 1)
					} else {
						gets++
						if v, found := cache.Get(key); found {
							copy(out, v.([]byte))
							hits++
						}
					}
					done++
				}
			}
			atomic.AddInt64(&opsTotal, int64(done))
			atomic.AddInt64(&hitsTotal, int64(hits))
			atomic.AddInt64(&getsTotal, int64(gets))
		}(t)
	}
	for atomic.LoadInt64(&ready) < int64(*threads) {
		time.Sleep(time.Millisecond)
	}
	started := time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	if err := json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"workload":   *workload,
		"threads":    *threads,
		"policy":     "ristretto",
		"valueBytes": *valueBytes,
		"ops":        opsTotal,
		"seconds":    elapsed,
		"mops":       float64(opsTotal) / elapsed / 1e6,
		"hits":       hitsTotal,
		"gets":       getsTotal,
	}); err != nil {
		die("%v", err)
	}
}
