// Replays a trace through ristretto (dgraph-io/ristretto, as Debian packages it) as a look-aside
// cache: Get, and on a miss Set with cost 1, so MaxCost is the capacity in items. Prints one JSON
// line per capacity in hitratio_bench's shape (native/bench/hitratio.cc), policy "ristretto".
//
//	ristretto-replay --trace FILE [--format keys|arc] [--name NAME] [--capacities 1%,5%,10%|ITEMS,...]
//
// Formats as in hitratio_bench: "keys" is one key per line; "arc" is the ARC paper's block trace
// (`start count ignored request_number`, each line count lookups of consecutive blocks); a FILE
// ending in ".zst" is streamed through `zstd -dc`.
//
// Sets are synchronous: ristretto applies a Set later on its own goroutine, so after each Set the
// replay waits until the policy has decided (KeysAdded or SetsRejected moved) and every victim it
// chose has left the store (OnEvict calls caught up with KeysEvicted). Reads keep ristretto's own
// lossy, batched frequency updates: that is how it counts accesses in use.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto"
)

type trace struct {
	ids      []uint32 // one per request
	keys     []string // the key of each id
	distinct int
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ristretto-replay: "+format+"\n", args...)
	os.Exit(2)
}

func openTrace(path string) (io.Reader, func()) {
	if strings.HasSuffix(path, ".zst") {
		cmd := exec.Command("zstd", "-dc", "--", path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			die("%v", err)
		}
		if err := cmd.Start(); err != nil {
			die("zstd: %v", err)
		}
		return out, func() {
			if err := cmd.Wait(); err != nil {
				die("zstd -dc %s: %v", path, err)
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		die("%v", err)
	}
	return f, func() { f.Close() }
}

func readTrace(path, format string) *trace {
	r, done := openTrace(path)
	t := &trace{}
	ids := map[string]uint32{}
	add := func(key string) {
		id, ok := ids[key]
		if !ok {
			id = uint32(len(t.keys))
			ids[key] = id
			t.keys = append(t.keys, key)
		}
		t.ids = append(t.ids, id)
	}
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 1<<16), 1<<20)
	for scanner.Scan() {
		line := strings.TrimRight(scanner.Text(), "\r")
		if line == "" {
			continue
		}
		if format == "keys" {
			add(line)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			die("bad line in %s: %q", path, line)
		}
		start, err1 := strconv.ParseUint(fields[0], 10, 64)
		count, err2 := strconv.ParseUint(fields[1], 10, 64)
		if err1 != nil || err2 != nil {
			die("bad line in %s: %q", path, line)
		}
		for block := start; block < start+count; block++ {
			add(strconv.FormatUint(block, 10))
		}
	}
	if err := scanner.Err(); err != nil {
		die("reading %s: %v", path, err)
	}
	done()
	if len(t.ids) == 0 {
		die("trace %s has no requests", path)
	}
	t.distinct = len(t.keys)
	return t
}

func parseCapacity(spec string, distinct int) int64 {
	if strings.HasSuffix(spec, "%") {
		percent, err := strconv.ParseFloat(strings.TrimSuffix(spec, "%"), 64)
		if err != nil || !(percent > 0) {
			die("bad capacity %s", spec)
		}
		items := int64(float64(distinct)*percent/100 + 0.5)
		if items < 1 {
			items = 1
		}
		return items
	}
	items, err := strconv.ParseInt(spec, 10, 64)
	if err != nil || items <= 0 {
		die("bad capacity %s", spec)
	}
	return items
}

func replay(t *trace, capacity int64) (hits uint64, items int64) {
	var evicted uint64 // OnEvict calls: victims that have left the store
	cache, err := ristretto.NewCache(&ristretto.Config{
		NumCounters: 10 * capacity, // ristretto's advice: 10x the items held when full
		MaxCost:     capacity,
		BufferItems: 64, // ristretto's advice
		Metrics:     true,
		OnEvict: func(key, conflict uint64, value interface{}, cost int64) {
			atomic.AddUint64(&evicted, 1)
		},
	})
	if err != nil {
		die("%v", err)
	}
	defer cache.Close()
	decided := uint64(0) // sets the policy has added or rejected
	for _, id := range t.ids {
		key := t.keys[id]
		if _, ok := cache.Get(key); ok {
			hits++
			continue
		}
		if !cache.Set(key, id, 1) {
			continue // dropped by the set buffer: nothing to wait for
		}
		decided++
		for cache.Metrics.KeysAdded()+cache.Metrics.SetsRejected() < decided ||
			atomic.LoadUint64(&evicted) < cache.Metrics.KeysEvicted() {
			runtime.Gosched()
		}
	}
	return hits, int64(cache.Metrics.KeysAdded() - cache.Metrics.KeysEvicted())
}

func main() {
	path := flag.String("trace", "", "trace file")
	format := flag.String("format", "keys", "keys | arc")
	name := flag.String("name", "", "trace name in the output (default: the path)")
	capacities := flag.String("capacities", "1%,5%,10%", "capacities: % of distinct keys or items")
	flag.Parse()
	if *path == "" {
		die("usage: ristretto-replay --trace FILE [--format keys|arc] [--name NAME] [--capacities 1%%,5%%,10%%]")
	}
	if *format != "keys" && *format != "arc" {
		die("unknown format %s (keys | arc)", *format)
	}
	if *name == "" {
		*name = *path
	}
	t := readTrace(*path, *format)
	out := json.NewEncoder(os.Stdout)
	for _, spec := range strings.Split(*capacities, ",") {
		if spec == "" {
			continue
		}
		capacity := parseCapacity(spec, t.distinct)
		started := time.Now()
		hits, items := replay(t, capacity)
		if err := out.Encode(map[string]interface{}{
			"trace":          *name,
			"policy":         "ristretto",
			"capacity":       spec,
			"capacity_items": capacity,
			"requests":       len(t.ids),
			"distinct":       t.distinct,
			"hits":           hits,
			"hit_ratio":      float64(hits) / float64(len(t.ids)),
			"items_at_end":   items,
			"seconds":        time.Since(started).Seconds(),
		}); err != nil {
			die("%v", err)
		}
	}
}
