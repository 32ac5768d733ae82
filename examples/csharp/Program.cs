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
    // "Hello from voxide, a text to speech engine." as espeak IPA.
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
