// voxide C++ example: the header-only wrapper (voxide.hpp), several threads
// sharing one engine, streaming with a lambda, word timestamps, errors as
// exceptions.
//
//   speak_cpp [VOICE_PATH [OUT_WAV]]     (defaults: $VOXIDE_VOICE, out.wav)
#include <voxide.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

static const std::string kSentence = "Hello from voxide, a text to speech engine.";
// kSentence as espeak IPA.
static const std::string kSentenceIpa = "həlˈoʊ fɹʌm vˈɑːksaɪd, ɐ tˈɛkst tə spˈiːtʃ ˈɛndʒɪn.";
static const std::vector<std::string> kShort = {"wˈʌn.", "tˈuː.", "θɹˈiː.", "fˈoːɹ."};

int main(int argc, char **argv) {
    const char *env_voice = std::getenv("VOXIDE_VOICE");
    std::string voice = argc > 1 ? argv[1] : (env_voice ? env_voice : "");
    std::string out = argc > 2 ? argv[2] : "out.wav";
    if (voice.empty()) {
        std::cerr << "usage: " << argv[0] << " VOICE_PATH [OUT_WAV]   (or set VOXIDE_VOICE)\n";
        return 2;
    }
    try {
        voxide::Engine engine(voxide::EngineOptions(voice).max_concurrent(2));
        std::cout << "voxide " << voxide::version() << " on " << engine.device_name() << "\n";
        const auto phonemes = voxide::SpeakOptions().phonemes();

        // Several threads share one engine; two permits bound the requests in flight.
        std::mutex mu;
        std::vector<std::thread> threads;
        std::vector<double> seconds(kShort.size());
        for (std::size_t i = 0; i < kShort.size(); i++) {
            threads.emplace_back([&, i] {
                try {
                    voxide::Audio a = engine.speak(kShort[i], phonemes);  // waits for a permit
                    seconds[i] = a.duration();
                } catch (const voxide::Error &e) {
                    std::lock_guard<std::mutex> lock(mu);
                    std::cerr << "thread " << i << ": " << e.what() << "\n";
                }
            });
        }
        for (auto &t : threads) t.join();
        for (std::size_t i = 0; i < kShort.size(); i++)
            std::cout << "thread " << i << ": " << seconds[i] << " s\n";

        // The whole sentence, with span-like access to the samples.
        voxide::Audio audio = engine.speak(kSentenceIpa, phonemes);
        voxide::Samples s = audio.samples();
        float peak = 0;
        for (float x : s) peak = std::max(peak, std::fabs(x));
        audio.write_wav(out);
        std::cout << "spoke " << s.size() << " samples (" << audio.duration() << " s, peak " << peak
                  << ") to " << out << "\n";

        // Streaming with a lambda; the chunks add up to the same samples.
        std::size_t streamed = 0, chunks = 0;
        engine.speak_stream(kSentenceIpa, [&](voxide::Samples chunk) {
            streamed += chunk.size();
            chunks++;
            return true;  // false would cancel
        }, phonemes);
        std::cout << "streamed " << chunks << " chunks, " << streamed << " samples\n";
        if (streamed != s.size()) throw std::runtime_error("streamed audio differs from the whole audio");

        // Plain text: each input word and when it is spoken.
        voxide::Audio text = engine.speak(kSentence);
        for (const voxide::Word &w : text.words())
            std::printf("  %-8s %.2f..%.2f s\n", w.text.c_str(), double(w.start) / text.sample_rate(),
                        double(w.end) / text.sample_rate());

        // Errors are exceptions carrying the status.
        try {
            engine.speak("hˈaɪ.", phonemes, "no-such-voice");
        } catch (const voxide::Error &e) {
            std::cout << "expected error: " << e.status_name() << "\n";
        }
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
