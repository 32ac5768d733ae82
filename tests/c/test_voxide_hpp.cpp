// Tests of the C++17 wrapper include/voxide.hpp (RAII, exceptions, streaming
// with a lambda, permits). Built by scripts/test-c.sh with ASan + UBSan.
//   test_voxide_hpp VOICE_PATH
#include <voxide.hpp>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static int g_failures = 0, g_passed = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                \
        }                                                                              \
    } while (0)

template <class F>
static void run(const char *name, F f) {
    int failures = 0;
    try {
        f(failures);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "    unexpected exception: %s\n", e.what());
        failures++;
    }
    std::printf("%s %s\n", failures ? "FAIL" : "ok  ", name);
    if (failures) g_failures++; else g_passed++;
}

template <class F>
static VoxideStatus status_of(F f) {
    try {
        f();
    } catch (const voxide::Error &e) {
        return e.status();
    }
    return VOXIDE_OK;
}

int main(int argc, char **argv) {
    const char *env = std::getenv("VOXIDE_VOICE");
    std::string voice = argc > 1 ? argv[1] : (env ? env : "");
    if (voice.empty()) {
        std::fprintf(stderr, "usage: %s VOICE_PATH\n", argv[0]);
        return 2;
    }
    const auto ipa = voxide::SpeakOptions().phonemes().length_scale(0.5f);
    voxide::Engine engine(voxide::EngineOptions(voice).max_concurrent(2).threads(2));

    run("errors_carry_status_and_message", [&](int &failures) {
        CHECK(status_of([&] { voxide::Engine e("/nonexistent/voice.onnx"); }) == VOXIDE_ERR_IO);
        try {
            voxide::Engine e("/nonexistent/voice.onnx");
        } catch (const voxide::Error &e) {
            CHECK(std::string(e.status_name()) == "VOXIDE_ERR_IO");
            CHECK(std::strstr(e.what(), "/nonexistent/voice.onnx") != nullptr);
        }
        CHECK(status_of([&] { engine.speak("hˈaɪ.", ipa, "nobody"); }) == VOXIDE_ERR_UNKNOWN_VOICE);
        CHECK(status_of([&] { engine.sample_rate("nobody"); }) == VOXIDE_ERR_UNKNOWN_VOICE);
        CHECK(engine.sample_rate() == 22050);
        CHECK(!engine.device_name().empty());
        CHECK(!voxide::version().empty());
    });

    run("speak_and_samples_view", [&](int &failures) {
        voxide::Audio a = engine.speak("hˈaɪ.", ipa);
        voxide::Samples s = a.samples();
        CHECK(s.size() == a.size() && s.size() > 0);
        CHECK(a.sample_rate() == 22050 && a.duration() > 0);
        std::size_t n = 0;
        for (float x : s) n += (x == x);  // finite-ish, iterable
        CHECK(n == s.size());
        CHECK(s.to_vector().size() == s.size());
        bool threw = false;
        try { (void)s.at(s.size()); } catch (const std::out_of_range &) { threw = true; }
        CHECK(threw);
        voxide::Audio empty = engine.speak("");
        CHECK(empty.empty() && empty.samples().empty());
    });

    run("permits", [&](int &failures) {
        voxide::Permit p1 = engine.acquire_permit();
        voxide::Permit p2 = engine.acquire_permit(std::chrono::milliseconds(100));
        CHECK(!engine.try_acquire_permit().has_value());
        CHECK(status_of([&] { engine.acquire_permit(std::chrono::milliseconds(20)); }) == VOXIDE_ERR_TIMEOUT);
        voxide::Audio a = engine.speak("", std::move(p1));  // consumes p1
        CHECK(!p1);
        auto p3 = engine.try_acquire_permit();
        CHECK(p3.has_value());
        // A failing speak consumes its permit too.
        CHECK(status_of([&] { engine.speak("", std::move(*p3), ipa, "nobody"); }) == VOXIDE_ERR_UNKNOWN_VOICE);
        CHECK(engine.try_acquire_permit().has_value());
    });

    run("stream_with_lambda", [&](int &failures) {
        voxide::Audio whole = engine.speak("hˈaɪ.", ipa);
        std::vector<float> got;
        engine.speak_stream("hˈaɪ.", [&](voxide::Samples c) {
            got.insert(got.end(), c.begin(), c.end());
            return true;
        }, ipa);
        CHECK(got == whole.samples().to_vector());
        // A void lambda works too.
        std::size_t chunks = 0;
        engine.speak_stream("hˈaɪ.", [&](voxide::Samples) { chunks++; }, ipa);
        CHECK(chunks >= 1);
        // Returning false cancels.
        CHECK(status_of([&] { engine.speak_stream("hˈaɪ.", [](voxide::Samples) { return false; }, ipa); }) ==
              VOXIDE_ERR_CANCELLED);
        // An exception in the lambda is rethrown (never unwinds through C).
        bool rethrown = false;
        try {
            engine.speak_stream("hˈaɪ.", [](voxide::Samples) -> bool { throw std::runtime_error("from lambda"); },
                                ipa);
        } catch (const std::runtime_error &e) {
            rethrown = std::string(e.what()) == "from lambda";
        }
        CHECK(rethrown);
        CHECK(engine.try_acquire_permit().has_value());
    });

    run("threads_share_engine", [&](int &failures) {
        voxide::Audio ref = engine.speak("jˈɛs.", ipa);
        std::vector<std::thread> ts;
        std::vector<int> same(4, 0);
        for (int i = 0; i < 4; i++)
            ts.emplace_back([&, i] { same[i] = engine.speak("jˈɛs.", ipa).samples().to_vector() == ref.samples().to_vector(); });
        for (auto &t : ts) t.join();
        for (int s : same) CHECK(s == 1);
    });

    run("audio_outlives_engine", [&](int &failures) {
        std::optional<voxide::Audio> a;
        std::optional<voxide::Permit> p;
        {
            voxide::Engine e(voxide::EngineOptions(voice).threads(1));
            a.emplace(e.speak("", ipa));
            p.emplace(e.acquire_permit());
        }
        CHECK(a->empty());
        p.reset();  // giving back a permit of a freed engine handle is fine
    });

    std::printf("%d passed, %d failed\n", g_passed, g_failures);
    return g_failures ? 1 : 0;
}
