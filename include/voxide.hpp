// voxide.hpp - header-only C++17 wrapper of the voxide C API (voxide.h).
//
//   voxide::Engine engine("voices/en_US-joe-medium.onnx");
//   voxide::Audio audio = engine.speak("həlˈoʊ.", voxide::SpeakOptions().phonemes());
//   for (float s : audio.samples()) { ... }
//   audio.write_wav("hello.wav");
//   engine.speak_stream("həlˈoʊ.", [](voxide::Samples chunk) { ...; return true; },
//                       voxide::SpeakOptions().phonemes());
//   voxide::Audio text = engine.speak("Hello world.", voxide::SpeakOptions().speed(1.5f));
//   for (const voxide::Word &w : text.words()) { w.text, w.start, w.end ... }
//   text.write_subtitles("hello.srt", "Hello world.");
//   engine.speak_events("Hello world.", [](const voxide::Event &ev) { ...; return true; });
//
// - RAII: Engine, Permit and Audio own their C handles (move-only) and free
//   them in their destructors.
// - Errors throw voxide::Error (a std::runtime_error) carrying the
//   VoxideStatus and the library's message.
// - Thread safety: one Engine may be used from any number of threads at once
//   (share it by reference or pointer); Permit and Audio objects belong to
//   one thread at a time.
// - Lifetimes: Samples is a non-owning view, valid while its Audio lives
//   (or, in a stream or event callback, until the callback returns). Word,
//   Mark and the strings of an Event are copies. An Audio or a Permit may
//   outlive the Engine it came from.
#ifndef VOXIDE_HPP
#define VOXIDE_HPP

#include "voxide.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace voxide {

/// An error reported by the C API: its status and message.
class Error : public std::runtime_error {
public:
    Error(VoxideStatus status, const std::string &message)
        : std::runtime_error(std::string(voxide_status_name(status)) + ": " + message), status_(status) {}
    /// The status, e.g. VOXIDE_ERR_TIMEOUT.
    VoxideStatus status() const noexcept { return status_; }
    /// The status's name, e.g. "VOXIDE_ERR_TIMEOUT" (static string).
    const char *status_name() const noexcept { return voxide_status_name(status_); }

private:
    VoxideStatus status_;
};

namespace detail {
inline void check(VoxideStatus status) {
    if (status != VOXIDE_OK) throw Error(status, voxide_last_error());
}
inline const char *voice_or_null(const std::string &voice) { return voice.empty() ? nullptr : voice.c_str(); }
struct AudioDeleter { void operator()(VoxideAudio *a) const noexcept { voxide_audio_free(a); } };
struct PermitDeleter { void operator()(VoxidePermit *p) const noexcept { voxide_permit_free(p); } };
struct EngineDeleter { void operator()(VoxideEngine *e) const noexcept { voxide_engine_free(e); } };
}  // namespace detail

/// A read-only, non-owning view of float samples (like std::span<const float>).
class Samples {
public:
    Samples() noexcept = default;
    Samples(const float *data, std::size_t size) noexcept : data_(size ? data : nullptr), size_(size) {}
    const float *data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    const float *begin() const noexcept { return data_; }
    const float *end() const noexcept { return data_ + size_; }
    float operator[](std::size_t i) const noexcept { return data_[i]; }
    /// Bounds-checked access; throws std::out_of_range.
    float at(std::size_t i) const {
        if (i >= size_) throw std::out_of_range("voxide::Samples::at");
        return data_[i];
    }
    /// A copy of the samples.
    std::vector<float> to_vector() const { return std::vector<float>(begin(), end()); }

private:
    const float *data_ = nullptr;
    std::size_t size_ = 0;
};

/// One input word and when it is spoken (a copy of a VoxideWord).
struct Word {
    std::string text;             ///< the word as written, without punctuation
    std::size_t char_start = 0;   ///< first byte of the word in the input text (SSML: in the SSML)
    std::size_t char_end = 0;     ///< byte past the word in the input text
    std::size_t start = 0;        ///< first sample of the word in the audio
    std::size_t end = 0;          ///< sample past the word's last
};

/// An SSML `<mark name="..."/>` and the sample it falls on.
struct Mark {
    std::string name;
    std::size_t sample = 0;
};

namespace detail {
inline Word word_of(const VoxideWord &w) {
    return Word{w.text ? std::string(w.text) : std::string(), w.char_start, w.char_end, w.start, w.end};
}
}  // namespace detail

/// One event of Engine::speak_events; only the fields of its `kind` are set.
struct Event {
    VoxideEventKind kind = VOXIDE_EVENT_AUDIO;
    Samples samples;  ///< VOXIDE_EVENT_AUDIO: the next audio (valid until the callback returns)
    Word word;        ///< VOXIDE_EVENT_WORD: an input word is complete
    Mark mark;        ///< VOXIDE_EVENT_MARK: an SSML mark was reached
    // VOXIDE_EVENT_SENTENCE_END: a sentence (or an SSML break's silence) ended.
};

/// Synthesized audio (owns a VoxideAudio).
class Audio {
public:
    /// Take ownership of a C handle (non-NULL).
    explicit Audio(VoxideAudio *raw) noexcept : raw_(raw) {}
    /// The samples; valid while this Audio lives.
    Samples samples() const noexcept { return Samples(voxide_audio_samples(raw_.get()), voxide_audio_len(raw_.get())); }
    std::size_t size() const noexcept { return voxide_audio_len(raw_.get()); }
    bool empty() const noexcept { return size() == 0; }
    /// Sample rate in Hz.
    std::uint32_t sample_rate() const noexcept { return voxide_audio_sample_rate(raw_.get()); }
    /// Duration in seconds.
    double duration() const noexcept { return sample_rate() ? double(size()) / double(sample_rate()) : 0.0; }
    /// Write a 16-bit mono WAV file; throws Error.
    void write_wav(const std::string &path) const { detail::check(voxide_audio_write_wav(raw_.get(), path.c_str())); }
    /// The input words with their sample ranges, in input order (none for ids input).
    std::vector<Word> words() const {
        std::vector<Word> out;
        std::size_t n = voxide_audio_word_count(raw_.get());
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            VoxideWord w{};
            detail::check(voxide_audio_word(raw_.get(), i, &w));
            out.push_back(detail::word_of(w));
        }
        return out;
    }
    /// The SSML marks with their samples, in order.
    std::vector<Mark> marks() const {
        std::vector<Mark> out;
        std::size_t n = voxide_audio_mark_count(raw_.get());
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            const char *name = nullptr;
            std::size_t sample = 0;
            detail::check(voxide_audio_mark(raw_.get(), i, &name, &sample));
            out.push_back(Mark{name ? std::string(name) : std::string(), sample});
        }
        return out;
    }
    /// Write the word timestamps and marks as JSON; throws Error.
    void write_timestamps(const std::string &path) const {
        detail::check(voxide_audio_write_timestamps(raw_.get(), path.c_str()));
    }
    /// Write captions (WebVTT when `path` ends in .vtt, else SRT) whose cues show
    /// `source`, the plain text that was spoken, with its punctuation; throws Error.
    void write_subtitles(const std::string &path, const std::string &source) const {
        detail::check(voxide_audio_write_subtitles(raw_.get(), path.c_str(), source.c_str()));
    }
    /// Write captions whose cues show the words; throws Error.
    void write_subtitles(const std::string &path) const {
        detail::check(voxide_audio_write_subtitles(raw_.get(), path.c_str(), nullptr));
    }
    const VoxideAudio *get() const noexcept { return raw_.get(); }

private:
    std::unique_ptr<VoxideAudio, detail::AudioDeleter> raw_;
};

/// The right to run one request (owns a VoxidePermit). Consumed by the
/// speak call it is moved into; destroyed unused, it is given back.
class Permit {
public:
    explicit Permit(VoxidePermit *raw) noexcept : raw_(raw) {}
    /// Give up ownership (the caller must consume or free the handle).
    VoxidePermit *release() noexcept { return raw_.release(); }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    std::unique_ptr<VoxidePermit, detail::PermitDeleter> raw_;
};

/// Engine options (wraps VoxideEngineOptions; strings are owned here).
class EngineOptions {
public:
    explicit EngineOptions(std::string voice_path) : voice_path_(std::move(voice_path)) {}
    EngineOptions &config_path(std::string path) { config_path_ = std::move(path); return *this; }
    EngineOptions &max_concurrent(std::uint32_t n) { raw_.max_concurrent = n; return *this; }
    EngineOptions &device(VoxideDevice d, std::uint32_t ordinal = 0) { raw_.device = d; raw_.device_ordinal = ordinal; return *this; }
    EngineOptions &threads(std::uint32_t n) { raw_.threads = n; return *this; }
    /// The C struct; its string pointers are valid while this object lives unchanged.
    VoxideEngineOptions raw() const {
        VoxideEngineOptions o = raw_;
        o.voice_path = voice_path_.c_str();
        o.config_path = config_path_ ? config_path_->c_str() : nullptr;
        return o;
    }

private:
    VoxideEngineOptions raw_ = voxide_engine_options_default();
    std::string voice_path_;
    std::optional<std::string> config_path_;
};

/// Per-request options (wraps VoxideSpeakOptions). Negative scales: the voice's defaults.
class SpeakOptions {
public:
    SpeakOptions() noexcept : raw_(voxide_speak_options_default()) {}
    SpeakOptions &input(VoxideInput i) noexcept { raw_.input = i; return *this; }
    /// `text` is espeak-style IPA, one sentence per line.
    SpeakOptions &phonemes() noexcept { return input(VOXIDE_INPUT_PHONEMES); }
    /// `text` is an SSML `<speak>` document.
    SpeakOptions &ssml() noexcept { return input(VOXIDE_INPUT_SSML); }
    /// Speaking speed, 0.25 to 4 (2: twice as fast; 0: normal).
    SpeakOptions &speed(float v) noexcept { raw_.speed = v; return *this; }
    SpeakOptions &phonemizer(VoxidePhonemizer p) noexcept { raw_.phonemizer = p; return *this; }
    SpeakOptions &noise_scale(float v) noexcept { raw_.noise_scale = v; return *this; }
    SpeakOptions &length_scale(float v) noexcept { raw_.length_scale = v; return *this; }
    SpeakOptions &noise_w(float v) noexcept { raw_.noise_w = v; return *this; }
    SpeakOptions &seed(std::uint64_t v) noexcept { raw_.seed = v; return *this; }
    /// Speaker of a multi-speaker voice (see Engine::speaker_id); negative: the voice's default.
    SpeakOptions &speaker(std::int64_t id) noexcept { raw_.speaker_id = id; return *this; }
    const VoxideSpeakOptions &raw() const noexcept { return raw_; }

private:
    VoxideSpeakOptions raw_;
};

/// A loaded engine (owns a VoxideEngine). Move-only; thread-safe: share one
/// Engine between threads by reference.
class Engine {
public:
    /// Load a voice with default options; throws Error.
    explicit Engine(const std::string &voice_path) {
        VoxideEngine *e = nullptr;
        detail::check(voxide_engine_create(voice_path.c_str(), &e));
        raw_.reset(e);
    }
    /// Create from options; throws Error.
    explicit Engine(const EngineOptions &options) {
        VoxideEngineOptions o = options.raw();
        VoxideEngine *e = nullptr;
        detail::check(voxide_engine_create_with(&o, &e));
        raw_.reset(e);
    }

    /// Load another voice under `name`; throws Error.
    void add_voice(const std::string &name, const std::string &voice_path) {
        detail::check(voxide_engine_add_voice(raw_.get(), name.c_str(), voice_path.c_str()));
    }

    /// Wait for a permit (forever).
    Permit acquire_permit() { return acquire(VOXIDE_TIMEOUT_FOREVER); }
    /// Wait up to `timeout`; throws Error(VOXIDE_ERR_TIMEOUT).
    Permit acquire_permit(std::chrono::milliseconds timeout) { return acquire(to_ms(timeout)); }
    /// Wait up to `timeout` (default: no wait); std::nullopt when none became free.
    std::optional<Permit> try_acquire_permit(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        VoxidePermit *p = nullptr;
        VoxideStatus st = voxide_engine_acquire_permit(raw_.get(), to_ms(timeout), &p);
        if (st == VOXIDE_ERR_TIMEOUT) return std::nullopt;
        detail::check(st);
        return Permit(p);
    }

    /// Speak with a permit (consumed, also when this throws). `voice` empty: the default voice.
    Audio speak(const std::string &text, Permit permit, const SpeakOptions &options = SpeakOptions(),
                const std::string &voice = std::string()) {
        VoxideAudio *a = nullptr;
        detail::check(voxide_engine_speak_with(raw_.get(), text.c_str(), detail::voice_or_null(voice),
                                               &options.raw(), permit.release(), &a));
        return Audio(a);
    }
    /// Speak, waiting for a permit first.
    Audio speak(const std::string &text, const SpeakOptions &options = SpeakOptions(),
                const std::string &voice = std::string()) {
        return speak(text, acquire_permit(), options, voice);
    }

    /// Stream the audio of `text` to `on_chunk(voxide::Samples)`, which returns
    /// bool (false cancels: Error(VOXIDE_ERR_CANCELLED) is thrown) or void.
    /// An exception thrown by `on_chunk` cancels the request and is rethrown here.
    template <class F>
    void speak_stream(const std::string &text, F &&on_chunk, Permit permit,
                      const SpeakOptions &options = SpeakOptions(), const std::string &voice = std::string()) {
        struct Ctx {
            F *f;
            std::exception_ptr error;
        } ctx{&on_chunk, nullptr};
        auto trampoline = [](const float *samples, std::size_t len, void *user_data) -> bool {
            Ctx *c = static_cast<Ctx *>(user_data);
            try {
                if constexpr (std::is_void_v<std::invoke_result_t<F &, Samples>>) {
                    (*c->f)(Samples(samples, len));
                    return true;
                } else {
                    return static_cast<bool>((*c->f)(Samples(samples, len)));
                }
            } catch (...) {
                c->error = std::current_exception();  // never unwind through C
                return false;
            }
        };
        VoxideStatus st = voxide_engine_speak_stream(raw_.get(), text.c_str(), detail::voice_or_null(voice),
                                                     &options.raw(), permit.release(), trampoline, &ctx);
        if (ctx.error) std::rethrow_exception(ctx.error);
        detail::check(st);
    }
    /// Stream, waiting for a permit first.
    template <class F>
    void speak_stream(const std::string &text, F &&on_chunk, const SpeakOptions &options = SpeakOptions(),
                      const std::string &voice = std::string()) {
        speak_stream(text, std::forward<F>(on_chunk), acquire_permit(), options, voice);
    }

    /// Stream the events of `text` (audio chunks, words, SSML marks, sentence
    /// ends, in order) to `on_event(const voxide::Event &)`, which returns bool
    /// (false cancels: Error(VOXIDE_ERR_CANCELLED) is thrown) or void. An
    /// exception thrown by `on_event` cancels the request and is rethrown here.
    template <class F>
    void speak_events(const std::string &text, F &&on_event, Permit permit,
                      const SpeakOptions &options = SpeakOptions(), const std::string &voice = std::string()) {
        struct Ctx {
            F *f;
            std::exception_ptr error;
        } ctx{&on_event, nullptr};
        auto trampoline = [](const VoxideEvent *e, void *user_data) -> bool {
            Ctx *c = static_cast<Ctx *>(user_data);
            try {
                Event ev;
                ev.kind = e->kind;
                if (e->kind == VOXIDE_EVENT_AUDIO) ev.samples = Samples(e->samples, e->len);
                if (e->kind == VOXIDE_EVENT_WORD) ev.word = detail::word_of(e->word);
                if (e->kind == VOXIDE_EVENT_MARK)
                    ev.mark = Mark{e->mark_name ? std::string(e->mark_name) : std::string(), e->mark_sample};
                if constexpr (std::is_void_v<std::invoke_result_t<F &, const Event &>>) {
                    (*c->f)(static_cast<const Event &>(ev));
                    return true;
                } else {
                    return static_cast<bool>((*c->f)(static_cast<const Event &>(ev)));
                }
            } catch (...) {
                c->error = std::current_exception();  // never unwind through C
                return false;
            }
        };
        VoxideStatus st = voxide_engine_speak_events(raw_.get(), text.c_str(), detail::voice_or_null(voice),
                                                     &options.raw(), permit.release(), trampoline, &ctx);
        if (ctx.error) std::rethrow_exception(ctx.error);
        detail::check(st);
    }
    /// Stream events, waiting for a permit first.
    template <class F>
    void speak_events(const std::string &text, F &&on_event, const SpeakOptions &options = SpeakOptions(),
                      const std::string &voice = std::string()) {
        speak_events(text, std::forward<F>(on_event), acquire_permit(), options, voice);
    }

    /// The id of speaker `name` (a name of the voice's speaker_id_map, or a
    /// number in range) of `voice` (empty: the default voice), for
    /// SpeakOptions::speaker; throws Error (VOXIDE_ERR_INVALID_ARGUMENT: no such speaker).
    std::int64_t speaker_id(const std::string &name, const std::string &voice = std::string()) const {
        std::int64_t id = -1;
        detail::check(voxide_engine_speaker_id(raw_.get(), detail::voice_or_null(voice), name.c_str(), &id));
        return id;
    }

    /// The device: "cpu" or "cuda:N (name)".
    std::string device_name() const { return voxide_engine_device_name(raw_.get()); }
    /// Sample rate of a voice (empty: the default voice); throws Error.
    std::uint32_t sample_rate(const std::string &voice = std::string()) const {
        std::uint32_t rate = 0;
        detail::check(voxide_engine_sample_rate(raw_.get(), detail::voice_or_null(voice), &rate));
        return rate;
    }
    VoxideEngine *get() const noexcept { return raw_.get(); }

private:
    static std::uint32_t to_ms(std::chrono::milliseconds t) {
        auto n = t.count();
        if (n <= 0) return 0;
        return n >= static_cast<long long>(UINT32_MAX) ? UINT32_MAX - 1 : static_cast<std::uint32_t>(n);
    }
    Permit acquire(std::uint32_t ms) {
        VoxidePermit *p = nullptr;
        detail::check(voxide_engine_acquire_permit(raw_.get(), ms, &p));
        return Permit(p);
    }
    std::unique_ptr<VoxideEngine, detail::EngineDeleter> raw_;
};

/// The library's version, e.g. "0.1.0".
inline std::string version() { return voxide_version(); }

}  // namespace voxide

#endif  // VOXIDE_HPP
