/*
 * voxide C example: speak a fixed sentence to a WAV file with SRT captions,
 * then stream the same sentence chunk by chunk into a second WAV file.
 *
 *   speak [VOICE_PATH [OUT_WAV]]     (defaults: $VOXIDE_VOICE, out.wav)
 *
 * Writes OUT_WAV (whole request, voxide_audio_write_wav), OUT_WAV's name
 * with ".srt" instead of ".wav" (its captions, voxide_audio_write_subtitles)
 * and with ".stream.wav" (streamed chunks).
 */
#include <voxide.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "Hello from voxide, a text to speech engine." as espeak IPA. */
static const char *const SENTENCE_TEXT = "Hello from voxide, a text to speech engine.";
static const char *const SENTENCE_IPA = "həlˈoʊ fɹʌm vˈɑːksaɪd, ɐ tˈɛkst tə spˈiːtʃ ˈɛndʒɪn.";

static int fail(const char *what, VoxideStatus st) {
    fprintf(stderr, "%s: %s: %s\n", what, voxide_status_name(st), voxide_last_error());
    return 1;
}

/* --- streaming into a WAV file: 16-bit PCM, sizes patched at the end --- */

struct wav_sink {
    FILE *f;
    uint32_t samples;
    size_t chunks;
};

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static void wav_header(unsigned char h[44], uint32_t rate, uint32_t samples) {
    memcpy(h, "RIFF", 4);
    put_u32(h + 4, 36 + samples * 2);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_u32(h + 16, 16);
    h[20] = 1; h[21] = 0; /* PCM */
    h[22] = 1; h[23] = 0; /* mono */
    put_u32(h + 24, rate);
    put_u32(h + 28, rate * 2);
    h[32] = 2; h[33] = 0;  /* block align */
    h[34] = 16; h[35] = 0; /* bits per sample */
    memcpy(h + 36, "data", 4);
    put_u32(h + 40, samples * 2);
}

/* The chunk is only valid during the call: convert and write it now. */
static bool on_chunk(const float *samples, size_t len, void *user_data) {
    struct wav_sink *sink = (struct wav_sink *)user_data;
    for (size_t i = 0; i < len; i++) {
        float x = samples[i];
        if (x > 1.0f) x = 1.0f;
        if (x < -1.0f) x = -1.0f;
        int16_t s = (int16_t)(x * 32767.0f);
        unsigned char b[2] = {(unsigned char)(s & 0xff), (unsigned char)((uint16_t)s >> 8)};
        if (fwrite(b, 1, 2, sink->f) != 2) return false; /* cancel on a write error */
    }
    sink->samples += (uint32_t)len;
    sink->chunks++;
    return true;
}

static int stream_to_wav(VoxideEngine *engine, const VoxideSpeakOptions *options, const char *path) {
    uint32_t rate = 0;
    VoxideStatus st = voxide_engine_sample_rate(engine, NULL, &rate);
    if (st != VOXIDE_OK) return fail("sample_rate", st);
    struct wav_sink sink = {fopen(path, "wb"), 0, 0};
    if (!sink.f) { perror(path); return 1; }
    unsigned char h[44];
    wav_header(h, rate, 0);
    fwrite(h, 1, sizeof h, sink.f);

    VoxidePermit *permit = NULL;
    st = voxide_engine_acquire_permit(engine, VOXIDE_TIMEOUT_FOREVER, &permit);
    if (st != VOXIDE_OK) { fclose(sink.f); return fail("acquire_permit", st); }
    /* The permit is consumed by the call, whatever its outcome. */
    st = voxide_engine_speak_stream(engine, SENTENCE_IPA, NULL, options, permit, on_chunk, &sink);
    if (st != VOXIDE_OK) { fclose(sink.f); return fail("speak_stream", st); }

    wav_header(h, rate, sink.samples);
    fseek(sink.f, 0, SEEK_SET);
    fwrite(h, 1, sizeof h, sink.f);
    if (fclose(sink.f) != 0) { perror(path); return 1; }
    printf("streamed %zu chunks, %.2f s of audio to %s\n", sink.chunks, (double)sink.samples / rate, path);
    return 0;
}

int main(int argc, char **argv) {
    const char *voice = argc > 1 ? argv[1] : getenv("VOXIDE_VOICE");
    const char *out = argc > 2 ? argv[2] : "out.wav";
    if (!voice || !*voice) {
        fprintf(stderr, "usage: %s VOICE_PATH [OUT_WAV]   (or set VOXIDE_VOICE)\n", argv[0]);
        return 2;
    }
    printf("voxide %s\n", voxide_version());

    VoxideEngine *engine = NULL;
    VoxideStatus st = voxide_engine_create(voice, &engine);
    if (st != VOXIDE_OK) return fail("engine_create", st);
    printf("device: %s\n", voxide_engine_device_name(engine));

    /* Plain text: reports its status (the text frontend may not be built in). */
    VoxidePermit *permit = NULL;
    VoxideAudio *audio = NULL;
    st = voxide_engine_acquire_permit(engine, VOXIDE_TIMEOUT_FOREVER, &permit);
    if (st != VOXIDE_OK) return fail("acquire_permit", st);
    st = voxide_engine_speak(engine, SENTENCE_TEXT, NULL, permit, &audio);
    if (st == VOXIDE_OK) {
        printf("plain text: %zu samples\n", voxide_audio_len(audio));
        /* Each input word with the samples it is spoken in. */
        for (size_t i = 0; i < voxide_audio_word_count(audio); i++) {
            VoxideWord w;
            if (voxide_audio_word(audio, i, &w) == VOXIDE_OK)
                printf("  %-8s %.2f..%.2f s\n", w.text, (double)w.start / voxide_audio_sample_rate(audio),
                       (double)w.end / voxide_audio_sample_rate(audio));
        }
    } else
        printf("plain text: %s (%s)\n", voxide_status_name(st), voxide_last_error());
    voxide_audio_free(audio);
    audio = NULL;

    /* The same sentence as phonemes: the whole audio at once. */
    VoxideSpeakOptions options = voxide_speak_options_default();
    options.input = VOXIDE_INPUT_PHONEMES;
    st = voxide_engine_acquire_permit(engine, VOXIDE_TIMEOUT_FOREVER, &permit);
    if (st != VOXIDE_OK) return fail("acquire_permit", st);
    st = voxide_engine_speak_with(engine, SENTENCE_IPA, NULL, &options, permit, &audio);
    if (st != VOXIDE_OK) { voxide_engine_free(engine); return fail("speak_with", st); }
    size_t n = voxide_audio_len(audio);
    uint32_t rate = voxide_audio_sample_rate(audio);
    const float *samples = voxide_audio_samples(audio); /* valid until voxide_audio_free */
    float peak = 0;
    for (size_t i = 0; i < n; i++) peak = samples[i] > peak ? samples[i] : (-samples[i] > peak ? -samples[i] : peak);
    st = voxide_audio_write_wav(audio, out);
    if (st != VOXIDE_OK) { voxide_audio_free(audio); voxide_engine_free(engine); return fail("write_wav", st); }
    printf("spoke %zu samples (%.2f s at %u Hz, peak %.3f) to %s\n", n, (double)n / rate, rate, peak, out);

    /* Captions of the WAV: OUT.wav -> OUT.srt, cues showing the spoken text. */
    char srt_path[4096], stream_path[4096];
    size_t len = strlen(out);
    if (len > 4 && strcmp(out + len - 4, ".wav") == 0) len -= 4;
    snprintf(srt_path, sizeof srt_path, "%.*s.srt", (int)len, out);
    st = voxide_audio_write_subtitles(audio, srt_path, SENTENCE_IPA);
    size_t words = voxide_audio_word_count(audio);
    voxide_audio_free(audio);
    if (st != VOXIDE_OK) { voxide_engine_free(engine); return fail("write_subtitles", st); }
    printf("captions of %zu words to %s\n", words, srt_path);

    /* Streaming: OUT.wav -> OUT.stream.wav */
    snprintf(stream_path, sizeof stream_path, "%.*s.stream.wav", (int)len, out);
    int rc = stream_to_wav(engine, &options, stream_path);

    voxide_engine_free(engine);
    return rc;
}
