// Package voxide wraps the voxide C API (libvoxide, found with pkg-config)
// the Go way: errors as error values, Close methods, streaming to an io.Writer.
//
// An *Engine may be used from any number of goroutines at once; a request
// waits for one of the engine's permits. Close the engine when done (a
// finalizer is only a safety net).
package voxide

/*
#cgo pkg-config: voxide
#include <stdlib.h>
#include <voxide.h>

extern bool goVoxideChunk(float *samples, size_t len, void *user_data);
extern bool goVoxideEvent(VoxideEvent *event, void *user_data);
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Status is a VoxideStatus code.
type Status int

// The statuses of the C API.
const (
	StatusOK              Status = C.VOXIDE_OK
	StatusNullArgument    Status = C.VOXIDE_ERR_NULL_ARGUMENT
	StatusInvalidUTF8     Status = C.VOXIDE_ERR_INVALID_UTF8
	StatusInvalidArgument Status = C.VOXIDE_ERR_INVALID_ARGUMENT
	StatusIO              Status = C.VOXIDE_ERR_IO
	StatusModel           Status = C.VOXIDE_ERR_MODEL
	StatusUnknownVoice    Status = C.VOXIDE_ERR_UNKNOWN_VOICE
	StatusTimeout         Status = C.VOXIDE_ERR_TIMEOUT
	StatusCancelled       Status = C.VOXIDE_ERR_CANCELLED
	StatusDevice          Status = C.VOXIDE_ERR_DEVICE
	StatusOutOfMemory     Status = C.VOXIDE_ERR_OUT_OF_MEMORY
	StatusPanic           Status = C.VOXIDE_ERR_PANIC
	StatusBusy            Status = C.VOXIDE_ERR_BUSY
	StatusUnavailable     Status = C.VOXIDE_ERR_UNAVAILABLE
)

// String returns the status's C name, e.g. "VOXIDE_ERR_TIMEOUT".
func (s Status) String() string { return C.GoString(C.voxide_status_name(C.VoxideStatus(s))) }

// Error is a failed call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("voxide: %s: %s", e.Status, e.Message) }

// Is matches another *Error with the same status and no message, so that
// errors.Is(err, voxide.ErrTimeout) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Message == ""
}

// Sentinels for errors.Is.
var (
	ErrTimeout      = &Error{Status: StatusTimeout}
	ErrCancelled    = &Error{Status: StatusCancelled}
	ErrUnknownVoice = &Error{Status: StatusUnknownVoice}
	ErrInvalidArg   = &Error{Status: StatusInvalidArgument}
	ErrClosed       = errors.New("voxide: engine is closed")
)

// check turns a status into an error; it must run on the goroutine's OS
// thread that made the call (the message is thread-local), so callers lock it.
func check(st C.VoxideStatus) error {
	if st == C.VOXIDE_OK {
		return nil
	}
	return &Error{Status: Status(st), Message: C.GoString(C.voxide_last_error())}
}

// call runs f (a C call returning a status) with the OS thread locked so
// the thread-local error message belongs to this call.
func call(f func() C.VoxideStatus) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return check(f())
}

// Version is the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.voxide_version()) }

// Device selects the compute device.
type Device int

// Devices.
const (
	DeviceAuto Device = C.VOXIDE_DEVICE_AUTO
	DeviceCPU  Device = C.VOXIDE_DEVICE_CPU
	DeviceCUDA Device = C.VOXIDE_DEVICE_CUDA
)

// Input says what the text of a request holds.
type Input int

// Inputs.
const (
	InputText     Input = C.VOXIDE_INPUT_TEXT
	InputPhonemes Input = C.VOXIDE_INPUT_PHONEMES
	InputIDs      Input = C.VOXIDE_INPUT_IDS
	InputSSML     Input = C.VOXIDE_INPUT_SSML // a <speak> document
)

// EngineOptions configure NewEngine. The zero value means the defaults.
type EngineOptions struct {
	ConfigPath    string // "" : voice path + ".json"
	MaxConcurrent int    // permits; 0: the default (2)
	Device        Device
	DeviceOrdinal int
	Threads       int // 0: all cores
}

// SpeakOptions configure a request. Start from DefaultSpeakOptions(); nil
// means the defaults.
type SpeakOptions struct {
	Input       Input
	NoiseScale  float32 // negative: the voice's default
	LengthScale float32 // negative: the voice's default
	NoiseW      float32 // negative: the voice's default
	Seed        uint64
	Speaker     int64   // negative: the voice's default; see Engine.SpeakerID
	Speed       float32 // 0.25 to 4 (2: twice as fast); 0: normal
}

// DefaultSpeakOptions returns the library's defaults (plain text, voice scales, seed 0).
func DefaultSpeakOptions() SpeakOptions {
	d := C.voxide_speak_options_default()
	return SpeakOptions{
		Input: Input(d.input), NoiseScale: float32(d.noise_scale), LengthScale: float32(d.length_scale),
		NoiseW: float32(d.noise_w), Seed: uint64(d.seed), Speaker: int64(d.speaker_id),
		Speed: float32(d.speed),
	}
}

func (o *SpeakOptions) c() C.VoxideSpeakOptions {
	r := C.voxide_speak_options_default()
	if o != nil {
		r.input = C.VoxideInput(o.Input)
		r.noise_scale = C.float(o.NoiseScale)
		r.length_scale = C.float(o.LengthScale)
		r.noise_w = C.float(o.NoiseW)
		r.seed = C.uint64_t(o.Seed)
		r.speaker_id = C.int64_t(o.Speaker)
		r.speed = C.float(o.Speed)
	}
	return r
}

// Engine is a loaded voice engine. Safe for concurrent use.
type Engine struct {
	mu  sync.RWMutex // Close waits for calls in progress
	ptr *C.VoxideEngine
}

// NewEngine loads the voice at voicePath (opts may be nil).
func NewEngine(voicePath string, opts *EngineOptions) (*Engine, error) {
	o := C.voxide_engine_options_default()
	cpath := C.CString(voicePath)
	defer C.free(unsafe.Pointer(cpath))
	o.voice_path = cpath
	if opts != nil {
		if opts.ConfigPath != "" {
			cc := C.CString(opts.ConfigPath)
			defer C.free(unsafe.Pointer(cc))
			o.config_path = cc
		}
		if opts.MaxConcurrent > 0 {
			o.max_concurrent = C.uint32_t(opts.MaxConcurrent)
		}
		o.device = C.VoxideDevice(opts.Device)
		o.device_ordinal = C.uint32_t(opts.DeviceOrdinal)
		o.threads = C.uint32_t(opts.Threads)
	}
	var ptr *C.VoxideEngine
	if err := call(func() C.VoxideStatus { return C.voxide_engine_create_with(&o, &ptr) }); err != nil {
		return nil, err
	}
	e := &Engine{ptr: ptr}
	runtime.SetFinalizer(e, func(e *Engine) { e.Close() })
	return e, nil
}

// Close frees the engine. Audio obtained from it stays valid. It waits for
// calls in progress on other goroutines; do not call it from a Stream callback.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr != nil {
		C.voxide_engine_free(e.ptr)
		e.ptr = nil
	}
	return nil
}

func (e *Engine) with(f func(p *C.VoxideEngine) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	return f(e.ptr)
}

// DeviceName is "cpu" or "cuda:N (name)".
func (e *Engine) DeviceName() string {
	var name string
	_ = e.with(func(p *C.VoxideEngine) error {
		name = C.GoString(C.voxide_engine_device_name(p))
		return nil
	})
	return name
}

func cstrOrNil(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// SampleRate of a voice ("" : the default voice), in Hz.
func (e *Engine) SampleRate(voice string) (int, error) {
	var rate C.uint32_t
	err := e.with(func(p *C.VoxideEngine) error {
		cv := cstrOrNil(voice)
		defer C.free(unsafe.Pointer(cv))
		return call(func() C.VoxideStatus { return C.voxide_engine_sample_rate(p, cv, &rate) })
	})
	return int(rate), err
}

// SpeakerID is the id of speaker name (a name of the voice's speaker_id_map,
// or a number in range) of voice ("" : the default voice), for
// SpeakOptions.Speaker. No such speaker matches ErrInvalidArg.
func (e *Engine) SpeakerID(name, voice string) (int64, error) {
	var id C.int64_t
	err := e.with(func(p *C.VoxideEngine) error {
		cn := C.CString(name)
		defer C.free(unsafe.Pointer(cn))
		cv := cstrOrNil(voice)
		defer C.free(unsafe.Pointer(cv))
		return call(func() C.VoxideStatus { return C.voxide_engine_speaker_id(p, cv, cn, &id) })
	})
	return int64(id), err
}

// Permit is the right to run one request. Pass it to SpeakWithPermit (which
// consumes it) or give it back with Close.
type Permit struct {
	ptr *C.VoxidePermit
}

// Close gives an unused permit back; a no-op after use.
func (p *Permit) Close() error {
	if p != nil && p.ptr != nil {
		C.voxide_permit_free(p.ptr)
		p.ptr = nil
	}
	return nil
}

func (p *Permit) take() *C.VoxidePermit {
	if p == nil {
		return nil
	}
	ptr := p.ptr
	p.ptr = nil
	return ptr
}

// AcquirePermit waits up to timeout for a permit (negative: forever; 0:
// no wait). The error matches ErrTimeout when none became free.
func (e *Engine) AcquirePermit(timeout time.Duration) (*Permit, error) {
	ms := C.uint32_t(C.UINT32_MAX)
	if timeout >= 0 {
		ms = C.uint32_t(math.Min(float64(timeout.Milliseconds()), float64(math.MaxUint32-1)))
	}
	var ptr *C.VoxidePermit
	err := e.with(func(p *C.VoxideEngine) error {
		return call(func() C.VoxideStatus { return C.voxide_engine_acquire_permit(p, ms, &ptr) })
	})
	if err != nil {
		return nil, err
	}
	return &Permit{ptr: ptr}, nil
}

// Audio is synthesized speech; Close frees it.
type Audio struct {
	ptr *C.VoxideAudio
}

// Samples returns a copy of the float samples.
func (a *Audio) Samples() []float32 {
	n := int(C.voxide_audio_len(a.ptr))
	out := make([]float32, n)
	if n > 0 {
		copy(out, unsafe.Slice((*float32)(unsafe.Pointer(C.voxide_audio_samples(a.ptr))), n))
	}
	// Lifetime rule: the samples belong to a.ptr, which a's finalizer frees.
	// Without this, the GC may collect a (and free the samples) as soon as
	// a.ptr was read, while copy still reads them.
	runtime.KeepAlive(a)
	return out
}

// Len is the number of samples.
func (a *Audio) Len() int {
	defer runtime.KeepAlive(a)
	return int(C.voxide_audio_len(a.ptr))
}

// SampleRate in Hz.
func (a *Audio) SampleRate() int {
	defer runtime.KeepAlive(a)
	return int(C.voxide_audio_sample_rate(a.ptr))
}

// WriteWAV writes a 16-bit mono WAV file.
func (a *Audio) WriteWAV(path string) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	defer runtime.KeepAlive(a) // a's finalizer must not free the audio mid-call
	return call(func() C.VoxideStatus { return C.voxide_audio_write_wav(a.ptr, cp) })
}

// Word is an input word and when it is spoken.
type Word struct {
	Text      string // as written, without the punctuation around it
	CharStart int    // first byte of the word in the input text (SSML: in the SSML)
	CharEnd   int    // byte past the word
	Start     int    // first sample of the word in the audio
	End       int    // sample past the word's last
}

// Mark is an SSML <mark name="..."/> and the sample it falls on.
type Mark struct {
	Name   string
	Sample int
}

func wordOf(w *C.VoxideWord) Word {
	return Word{Text: C.GoString(w.text), CharStart: int(w.char_start), CharEnd: int(w.char_end),
		Start: int(w.start), End: int(w.end)}
}

// Words are the input words with their sample ranges, in input order (none
// for ids input).
func (a *Audio) Words() []Word {
	defer runtime.KeepAlive(a) // the words' texts belong to the audio
	n := int(C.voxide_audio_word_count(a.ptr))
	out := make([]Word, 0, n)
	for i := 0; i < n; i++ {
		var w C.VoxideWord
		if C.voxide_audio_word(a.ptr, C.size_t(i), &w) == C.VOXIDE_OK {
			out = append(out, wordOf(&w))
		}
	}
	return out
}

// Marks are the SSML marks reached, in order.
func (a *Audio) Marks() []Mark {
	defer runtime.KeepAlive(a)
	n := int(C.voxide_audio_mark_count(a.ptr))
	out := make([]Mark, 0, n)
	for i := 0; i < n; i++ {
		var name *C.char
		var sample C.size_t
		if C.voxide_audio_mark(a.ptr, C.size_t(i), &name, &sample) == C.VOXIDE_OK {
			out = append(out, Mark{Name: C.GoString(name), Sample: int(sample)})
		}
	}
	return out
}

// WriteTimestamps writes the words and marks as JSON.
func (a *Audio) WriteTimestamps(path string) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	defer runtime.KeepAlive(a)
	return call(func() C.VoxideStatus { return C.voxide_audio_write_timestamps(a.ptr, cp) })
}

// WriteSubtitles writes captions: WebVTT when path ends in .vtt, else SRT.
// Cues show source, the plain text that was spoken, with its punctuation
// ("" : the words).
func (a *Audio) WriteSubtitles(path, source string) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	cs := cstrOrNil(source)
	defer C.free(unsafe.Pointer(cs))
	defer runtime.KeepAlive(a)
	return call(func() C.VoxideStatus { return C.voxide_audio_write_subtitles(a.ptr, cp, cs) })
}

// Close frees the audio.
func (a *Audio) Close() error {
	if a != nil && a.ptr != nil {
		C.voxide_audio_free(a.ptr)
		a.ptr = nil
	}
	return nil
}

// Speak waits for a permit and speaks text with the default voice.
func (e *Engine) Speak(text string, opts *SpeakOptions) (*Audio, error) {
	p, err := e.AcquirePermit(-1)
	if err != nil {
		return nil, err
	}
	return e.SpeakWithPermit(p, text, "", opts)
}

// SpeakWithPermit speaks text with voice ("" : the default); the permit is
// consumed whatever the outcome.
func (e *Engine) SpeakWithPermit(permit *Permit, text, voice string, opts *SpeakOptions) (*Audio, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	cv := cstrOrNil(voice)
	defer C.free(unsafe.Pointer(cv))
	o := opts.c()
	pp := permit.take()
	var out *C.VoxideAudio
	err := e.with(func(p *C.VoxideEngine) error {
		return call(func() C.VoxideStatus { return C.voxide_engine_speak_with(p, ctext, cv, &o, pp, &out) })
	})
	if err == ErrClosed && pp != nil {
		C.voxide_permit_free(pp)
	}
	if err != nil {
		return nil, err
	}
	a := &Audio{ptr: out}
	runtime.SetFinalizer(a, func(a *Audio) { a.Close() })
	return a, nil
}

// Lifetime rules for streaming (the C side keeps only user_data, a pointer
// to C memory holding a cgo.Handle, never a Go pointer): the handle keeps the
// state and fn reachable for the GC until StreamFunc returns, and it is
// deleted only after voxide_engine_speak_stream has returned, so the
// callback can never see a collected fn.
type streamState struct {
	fn       func([]float32) bool
	panicked any
}

//export goVoxideChunk
func goVoxideChunk(samples *C.float, n C.size_t, userData unsafe.Pointer) (ok C.bool) {
	h := *(*cgo.Handle)(userData)
	st := h.Value().(*streamState)
	// A panic must not unwind through the C and Rust frames of the stream
	// call (they would be skipped, leaking the request's permit): recover it,
	// cancel the stream, and re-panic in StreamFunc on the Go side.
	defer func() {
		if r := recover(); r != nil {
			st.panicked = r
			ok = false
		}
	}()
	// The chunk is only valid during this call.
	chunk := unsafe.Slice((*float32)(unsafe.Pointer(samples)), int(n))
	return C.bool(st.fn(chunk))
}

// StreamFunc speaks text and calls fn with each chunk of samples as soon as
// it is ready (the slice is only valid during the call). fn returns false to
// cancel; the error then matches ErrCancelled.
func (e *Engine) StreamFunc(text string, opts *SpeakOptions, fn func(chunk []float32) bool) error {
	p, err := e.AcquirePermit(-1)
	if err != nil {
		return err
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	o := opts.c()
	st := &streamState{fn: fn}
	h := cgo.NewHandle(st)
	defer h.Delete()
	hp := (*cgo.Handle)(C.malloc(C.size_t(unsafe.Sizeof(h))))
	defer C.free(unsafe.Pointer(hp))
	*hp = h
	pp := p.take()
	err = e.with(func(eng *C.VoxideEngine) error {
		return call(func() C.VoxideStatus {
			return C.voxide_engine_speak_stream(eng, ctext, nil, &o, pp,
				C.VoxideChunkCallback(C.goVoxideChunk), unsafe.Pointer(hp))
		})
	})
	if err == ErrClosed && pp != nil {
		C.voxide_permit_free(pp)
	}
	runtime.KeepAlive(st)
	if st.panicked != nil {
		panic(st.panicked)
	}
	return err
}

// EventKind says what an Event carries.
type EventKind int

// Event kinds.
const (
	EventAudio       EventKind = C.VOXIDE_EVENT_AUDIO        // Samples
	EventWord        EventKind = C.VOXIDE_EVENT_WORD         // Word
	EventMark        EventKind = C.VOXIDE_EVENT_MARK         // Mark
	EventSentenceEnd EventKind = C.VOXIDE_EVENT_SENTENCE_END // a sentence (or SSML break) ended
)

// Event is one event of SpeakEvents; only the fields of its Kind are set.
type Event struct {
	Kind    EventKind
	Samples []float32 // EventAudio: valid only during the callback
	Word    Word      // EventWord
	Mark    Mark      // EventMark
}

// Same lifetime rules as streamState (a cgo.Handle in C memory).
type eventState struct {
	fn       func(Event) bool
	panicked any
}

//export goVoxideEvent
func goVoxideEvent(ev *C.VoxideEvent, userData unsafe.Pointer) (ok C.bool) {
	h := *(*cgo.Handle)(userData)
	st := h.Value().(*eventState)
	defer func() { // never unwind through C: re-panicked in SpeakEvents
		if r := recover(); r != nil {
			st.panicked = r
			ok = false
		}
	}()
	e := Event{Kind: EventKind(ev.kind)}
	switch e.Kind {
	case EventAudio:
		e.Samples = unsafe.Slice((*float32)(unsafe.Pointer(ev.samples)), int(ev.len))
	case EventWord:
		e.Word = wordOf(&ev.word)
	case EventMark:
		e.Mark = Mark{Name: C.GoString(ev.mark_name), Sample: int(ev.mark_sample)}
	}
	return C.bool(st.fn(e))
}

// SpeakEvents speaks text and calls fn with every event in order: audio
// chunks, each input word once its audio has been delivered, SSML marks and
// sentence ends. fn returns false to cancel (the error then matches
// ErrCancelled); a panic in fn cancels and is re-raised here.
func (e *Engine) SpeakEvents(text string, opts *SpeakOptions, fn func(ev Event) bool) error {
	p, err := e.AcquirePermit(-1)
	if err != nil {
		return err
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	o := opts.c()
	st := &eventState{fn: fn}
	h := cgo.NewHandle(st)
	defer h.Delete()
	hp := (*cgo.Handle)(C.malloc(C.size_t(unsafe.Sizeof(h))))
	defer C.free(unsafe.Pointer(hp))
	*hp = h
	pp := p.take()
	err = e.with(func(eng *C.VoxideEngine) error {
		return call(func() C.VoxideStatus {
			return C.voxide_engine_speak_events(eng, ctext, nil, &o, pp,
				C.VoxideEventCallback(C.goVoxideEvent), unsafe.Pointer(hp))
		})
	})
	if err == ErrClosed && pp != nil {
		C.voxide_permit_free(pp)
	}
	runtime.KeepAlive(st)
	if st.panicked != nil {
		panic(st.panicked)
	}
	return err
}

// Stream speaks text and writes the audio to w as it is produced: 16-bit
// little-endian mono PCM at the voice's sample rate (see SampleRate).
// A write error cancels the request and is returned.
func (e *Engine) Stream(w io.Writer, text string, opts *SpeakOptions) error {
	var werr error
	buf := make([]byte, 0, 8192)
	err := e.StreamFunc(text, opts, func(chunk []float32) bool {
		buf = buf[:0]
		for _, x := range chunk {
			x = float32(math.Max(-1, math.Min(1, float64(x))))
			buf = binary.LittleEndian.AppendUint16(buf, uint16(int16(x*32767)))
		}
		if _, werr = w.Write(buf); werr != nil {
			return false
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return err
}

// WriteWAVHeader writes a 44-byte PCM16 mono WAV header for n samples.
func WriteWAVHeader(w io.Writer, rate, n int) error {
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+2*n))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(2*n))
	_, err := w.Write(h)
	return err
}

// StreamWAV streams text into a WAV file at path.
func (e *Engine) StreamWAV(path, text string, opts *SpeakOptions) error {
	rate, err := e.SampleRate("")
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := WriteWAVHeader(f, rate, 0); err != nil {
		return err
	}
	cw := &countingWriter{w: f}
	if err := e.Stream(cw, text, opts); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := WriteWAVHeader(f, rate, int(cw.n/2)); err != nil {
		return err
	}
	return f.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
