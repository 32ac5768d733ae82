// voxide Go example: speak a fixed sentence to a WAV file and stream it to a
// second one.
//
//	go run . [VOICE_PATH [OUT_WAV]]     (defaults: $VOXIDE_VOICE, out.wav)
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"voxide-example/voxide"
)

const sentence = "Hello from voxide, a text to speech engine."

// sentence as espeak IPA.
const sentenceIPA = "həlˈoʊ fɹʌm vˈɑːksaɪd, ɐ tˈɛkst tə spˈiːtʃ ˈɛndʒɪn."

func main() {
	voice := os.Getenv("VOXIDE_VOICE")
	out := "out.wav"
	if len(os.Args) > 1 {
		voice = os.Args[1]
	}
	if len(os.Args) > 2 {
		out = os.Args[2]
	}
	if voice == "" {
		fmt.Fprintln(os.Stderr, "usage: speak VOICE_PATH [OUT_WAV]   (or set VOXIDE_VOICE)")
		os.Exit(2)
	}
	if err := run(voice, out); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(voice, out string) error {
	engine, err := voxide.NewEngine(voice, &voxide.EngineOptions{MaxConcurrent: 2})
	if err != nil {
		return err
	}
	defer engine.Close()
	fmt.Printf("voxide %s on %s\n", voxide.Version(), engine.DeviceName())

	opts := voxide.DefaultSpeakOptions()
	opts.Input = voxide.InputPhonemes

	// Goroutines share the engine; permits bound the requests in flight.
	var wg sync.WaitGroup
	words := []string{"wˈʌn.", "tˈuː.", "θɹˈiː."}
	lens := make([]int, len(words))
	for i, w := range words {
		wg.Add(1)
		go func(i int, w string) {
			defer wg.Done()
			a, err := engine.Speak(w, &opts)
			if err != nil {
				fmt.Fprintln(os.Stderr, "goroutine:", err)
				return
			}
			defer a.Close()
			lens[i] = a.Len()
		}(i, w)
	}
	wg.Wait()
	fmt.Println("goroutine sample counts:", lens)

	audio, err := engine.Speak(sentenceIPA, &opts)
	if err != nil {
		return err
	}
	defer audio.Close()
	if err := audio.WriteWAV(out); err != nil {
		return err
	}
	fmt.Printf("spoke %d samples (%.2f s) to %s\n", audio.Len(), float64(audio.Len())/float64(audio.SampleRate()), out)

	streamPath := strings.TrimSuffix(out, ".wav") + ".stream.wav"
	if err := engine.StreamWAV(streamPath, sentenceIPA, &opts); err != nil {
		return err
	}
	fmt.Println("streamed to", streamPath)

	// Lifetime guards (docs/c-api.md): a garbage collection on every chunk
	// must not collect the callback or the audio, and the stream must equal
	// the whole-audio samples.
	want := audio.Samples()
	var got []float32
	if err := engine.StreamFunc(sentenceIPA, &opts, func(chunk []float32) bool {
		runtime.GC()
		got = append(got, chunk...)
		return true
	}); err != nil {
		return err
	}
	if len(got) != len(want) {
		return fmt.Errorf("GC-stressed stream: %d samples, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("GC-stressed stream differs at sample %d", i)
		}
	}
	// A panic in the callback comes back as a panic after the call, with the
	// request's permit returned (both permits can be taken without waiting).
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		_ = engine.StreamFunc("hˈaɪ.", &opts, func([]float32) bool { panic("boom") })
	}()
	if recovered != "boom" {
		return fmt.Errorf("callback panic: recovered %v, want boom", recovered)
	}
	var held []*voxide.Permit
	for i := 0; i < 2; i++ {
		p, err := engine.AcquirePermit(0)
		if err != nil {
			return fmt.Errorf("a permit leaked after the callback panic: %w", err)
		}
		held = append(held, p)
	}
	for _, p := range held {
		p.Close()
	}
	fmt.Println("lifetime guards ok")

	// Plain text: each input word and when it is spoken, as events.
	rate := float64(audio.SampleRate())
	var spoken []voxide.Word
	if err := engine.SpeakEvents(sentence, nil, func(ev voxide.Event) bool {
		if ev.Kind == voxide.EventWord {
			spoken = append(spoken, ev.Word)
			fmt.Printf("  %-8s %.2f..%.2f s\n", ev.Word.Text, float64(ev.Word.Start)/rate, float64(ev.Word.End)/rate)
		}
		return true
	}); err != nil {
		return err
	}
	text, err := engine.Speak(sentence, nil)
	if err != nil {
		return err
	}
	defer text.Close()
	if fmt.Sprint(text.Words()) != fmt.Sprint(spoken) {
		return fmt.Errorf("event words %v differ from the audio's %v", spoken, text.Words())
	}

	// Errors are values: match them with errors.Is.
	p, err := engine.AcquirePermit(-1)
	if err != nil {
		return err
	}
	if _, err := engine.SpeakWithPermit(p, "hˈaɪ.", "no-such-voice", &opts); errors.Is(err, voxide.ErrUnknownVoice) {
		fmt.Println("expected error:", err)
	} else {
		return fmt.Errorf("expected an unknown-voice error, got %v", err)
	}
	return nil
}
