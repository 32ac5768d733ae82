// voxide C# example: speak a fixed sentence to a WAV file, stream it to a
// second one, from several threads sharing one engine.
//
//   mono speak.exe [VOICE_PATH [OUT_WAV]]     (defaults: $VOXIDE_VOICE, out.wav)
using System;
using System.IO;
using System.Threading;
using Voxide;

static class Program
{
    const string Sentence = "Hello from voxide, a text to speech engine.";
    // Sentence as espeak IPA.
    const string SentenceIpa = "həlˈoʊ fɹʌm vˈɑːksaɪd, ɐ tˈɛkst tə spˈiːtʃ ˈɛndʒɪn.";

    static int Main(string[] args)
    {
        string voice = args.Length > 0 ? args[0] : Environment.GetEnvironmentVariable("VOXIDE_VOICE");
        string output = args.Length > 1 ? args[1] : "out.wav";
        if (string.IsNullOrEmpty(voice))
        {
            Console.Error.WriteLine("usage: mono speak.exe VOICE_PATH [OUT_WAV]   (or set VOXIDE_VOICE)");
            return 2;
        }
        try
        {
            using (var engine = new Engine(voice, maxConcurrent: 2))
            {
                Console.WriteLine("voxide " + Engine.Version + " on " + engine.DeviceName);
                var phonemes = new SpeakOptions { Input = Input.Phonemes };

                // Threads share the engine; two permits bound the requests in flight.
                string[] words = { "wˈʌn.", "tˈuː.", "θɹˈiː." };
                var lengths = new int[words.Length];
                var threads = new Thread[words.Length];
                for (int i = 0; i < words.Length; i++)
                {
                    int k = i;
                    threads[k] = new Thread(() =>
                    {
                        using (Audio a = engine.Speak(words[k], phonemes)) lengths[k] = a.Length;
                    });
                    threads[k].Start();
                }
                foreach (var t in threads) t.Join();
                Console.WriteLine("thread sample counts: " + string.Join(", ", lengths));

                using (Audio audio = engine.Speak(SentenceIpa, phonemes))
                {
                    float[] samples = audio.Samples();
                    float peak = 0;
                    foreach (float x in samples) peak = Math.Max(peak, Math.Abs(x));
                    audio.WriteWav(output);
                    Console.WriteLine(string.Format("spoke {0} samples ({1:F2} s, peak {2:F3}) to {3}",
                        samples.Length, audio.Duration, peak, output));
                }

                string streamPath = (output.EndsWith(".wav") ? output.Substring(0, output.Length - 4) : output) + ".stream.wav";
                using (var f = File.Create(streamPath)) engine.SpeakStreamWav(SentenceIpa, f, phonemes);
                Console.WriteLine("streamed to " + streamPath);

                // Lifetime guards (docs/c-api.md): a full GC on every chunk must not
                // collect the callback delegate, and the stream equals the whole audio.
                float[] whole;
                using (Audio a = engine.Speak(SentenceIpa, phonemes)) whole = a.Samples();
                var streamed = new System.Collections.Generic.List<float>();
                engine.SpeakStream(SentenceIpa, chunk =>
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    streamed.AddRange(chunk);
                    return true;
                }, phonemes);
                if (streamed.Count != whole.Length) throw new Exception("GC-stressed stream: wrong length");
                for (int i = 0; i < whole.Length; i++)
                    if (streamed[i] != whole[i]) throw new Exception("GC-stressed stream differs at sample " + i);
                // An exception in the callback is rethrown after the call, the permit returned.
                try
                {
                    engine.SpeakStream("hˈaɪ.", chunk => { throw new InvalidOperationException("boom"); }, phonemes);
                    throw new Exception("the callback exception was lost");
                }
                catch (InvalidOperationException e) when (e.Message == "boom") { }
                using (Permit p1 = engine.AcquirePermit(0))
                using (Permit p2 = engine.AcquirePermit(0)) { }
                Console.WriteLine("lifetime guards ok");

                // Plain text: each input word and when it is spoken.
                using (Audio text = engine.Speak(Sentence))
                    foreach (Word w in text.Words())
                        Console.WriteLine(string.Format(System.Globalization.CultureInfo.InvariantCulture,
                            "  {0,-8} {1:F2}..{2:F2} s", w.Text, (double)w.Start / text.SampleRate, (double)w.End / text.SampleRate));

                try
                {
                    engine.Speak("hˈaɪ.", phonemes, "no-such-voice");
                    throw new Exception("expected an unknown-voice error");
                }
                catch (VoxideException e) when (e.Status == Status.UnknownVoice)
                {
                    Console.WriteLine("expected error: " + e.Message);
                }
            }
            return 0;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}
