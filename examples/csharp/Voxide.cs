// Voxide.cs - C# bindings of the voxide C API (libvoxide.so) with P/Invoke.
//
// - Handles are SafeHandle subclasses: freed exactly once, never while a
//   call is using them (the marshaller holds a reference during each call).
// - Engine, Audio and Permit are IDisposable.
// - Failures throw VoxideException carrying the Status and the message.
// - An Engine may be used from any number of threads at once.
//
// Compile with the program:  mcs -out:speak.exe Voxide.cs Program.cs
// Run:                       LD_LIBRARY_PATH=PREFIX/lib mono speak.exe VOICE OUT.wav
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace Voxide
{
    /// <summary>VoxideStatus of the C API.</summary>
    public enum Status
    {
        Ok = 0, NullArgument = 1, InvalidUtf8 = 2, InvalidArgument = 3, Io = 4, Model = 5,
        UnknownVoice = 6, Timeout = 7, Cancelled = 8, Device = 9, OutOfMemory = 10, Panic = 11,
        Busy = 12, Unavailable = 13,
    }

    public enum Device { Auto = 0, Cpu = 1, Cuda = 2 }

    public enum Input { Text = 0, Phonemes = 1, Ids = 2, Ssml = 3 }

    /// <summary>What an Event carries (VoxideEventKind).</summary>
    public enum EventKind { Audio = 0, Word = 1, Mark = 2, SentenceEnd = 3 }

    /// <summary>An input word and when it is spoken (sample indices into the audio,
    /// byte offsets into the UTF-8 input text; for SSML into the SSML).</summary>
    public sealed class Word
    {
        public string Text { get; private set; }
        public long CharStart { get; private set; }
        public long CharEnd { get; private set; }
        public long Start { get; private set; }
        public long End { get; private set; }
        internal Word(WordNative w)
        {
            Text = Native.FromUtf8z(w.text);
            CharStart = (long)w.char_start.ToUInt64(); CharEnd = (long)w.char_end.ToUInt64();
            Start = (long)w.start.ToUInt64(); End = (long)w.end.ToUInt64();
        }
        public override string ToString() { return Text + " [" + Start + ", " + End + ")"; }
    }

    /// <summary>An SSML mark and the sample it falls on.</summary>
    public sealed class Mark
    {
        public string Name { get; private set; }
        public long Sample { get; private set; }
        internal Mark(string name, long sample) { Name = name; Sample = sample; }
    }

    /// <summary>One event of Engine.SpeakEvents; only the members of its Kind are set.</summary>
    public sealed class Event
    {
        public EventKind Kind { get; internal set; }
        /// <summary>EventKind.Audio: a copy of the next samples.</summary>
        public float[] Samples { get; internal set; }
        public Word Word { get; internal set; }
        public Mark Mark { get; internal set; }
    }

    /// <summary>A failed voxide call: its status and message.</summary>
    public class VoxideException : Exception
    {
        public Status Status { get; }
        public VoxideException(Status status, string message)
            : base(Native.StatusName(status) + ": " + message) { Status = status; }
    }

    internal sealed class EngineHandle : SafeHandle
    {
        public EngineHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.voxide_engine_free(handle); return true; }
    }

    internal sealed class PermitHandle : SafeHandle
    {
        public PermitHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.voxide_permit_free(handle); return true; }

        /// <summary>Hand the raw permit to a speak call, which consumes it.</summary>
        public IntPtr Consume()
        {
            if (IsClosed || IsInvalid) throw new ObjectDisposedException("Permit");
            IntPtr raw = handle;
            SetHandleAsInvalid(); // never released here again: the C call owns it now
            return raw;
        }
    }

    internal sealed class AudioHandle : SafeHandle
    {
        public AudioHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.voxide_audio_free(handle); return true; }
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct EngineOptionsNative
    {
        public UIntPtr struct_size;
        public IntPtr voice_path;
        public IntPtr config_path;
        public uint max_concurrent;
        public int device;
        public uint device_ordinal;
        public uint threads;
        // Appended fields (the header's order); defaults from voxide_engine_options_default().
        public int precision;
        public int cpu_isa;
        public int scheduler;
        public uint queue_depth;
        public int cuda_graphs;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct SpeakOptionsNative
    {
        public UIntPtr struct_size;
        public float noise_scale;
        public float length_scale;
        public float noise_w;
        public ulong seed;
        public long speaker_id;
        public int input;
        public int phonemizer; // VOXIDE_PHONEMIZER_BUILTIN (0) unless set
        public float speed;    // 1 unless set
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct WordNative
    {
        public IntPtr text;
        public UIntPtr char_start;
        public UIntPtr char_end;
        public UIntPtr start;
        public UIntPtr end;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct EventNative
    {
        public int kind;
        public IntPtr samples;
        public UIntPtr len;
        public WordNative word;
        public IntPtr mark_name;
        public UIntPtr mark_sample;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.I1)]
    internal delegate bool EventCallback(IntPtr ev, IntPtr userData);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.I1)]
    internal delegate bool ChunkCallback(IntPtr samples, UIntPtr len, IntPtr userData);

    internal static class Native
    {
        const string Lib = "voxide";

        [DllImport(Lib)] public static extern Status voxide_engine_create_with(ref EngineOptionsNative options, out EngineHandle engine);
        [DllImport(Lib)] public static extern EngineOptionsNative voxide_engine_options_default();
        [DllImport(Lib)] public static extern SpeakOptionsNative voxide_speak_options_default();
        [DllImport(Lib)] public static extern Status voxide_engine_add_voice(EngineHandle engine, byte[] name, byte[] path);
        [DllImport(Lib)] public static extern Status voxide_engine_acquire_permit(EngineHandle engine, uint timeoutMs, out PermitHandle permit);
        [DllImport(Lib)] public static extern Status voxide_engine_speak_with(EngineHandle engine, byte[] text, byte[] voice,
            ref SpeakOptionsNative options, IntPtr permit, out AudioHandle audio);
        [DllImport(Lib)] public static extern Status voxide_engine_speak_stream(EngineHandle engine, byte[] text, byte[] voice,
            ref SpeakOptionsNative options, IntPtr permit, ChunkCallback callback, IntPtr userData);
        [DllImport(Lib)] public static extern Status voxide_engine_sample_rate(EngineHandle engine, byte[] voice, out uint rate);
        [DllImport(Lib)] public static extern IntPtr voxide_engine_device_name(EngineHandle engine);
        [DllImport(Lib)] public static extern void voxide_engine_free(IntPtr engine);
        [DllImport(Lib)] public static extern void voxide_permit_free(IntPtr permit);
        [DllImport(Lib)] public static extern IntPtr voxide_audio_samples(AudioHandle audio);
        [DllImport(Lib)] public static extern UIntPtr voxide_audio_len(AudioHandle audio);
        [DllImport(Lib)] public static extern uint voxide_audio_sample_rate(AudioHandle audio);
        [DllImport(Lib)] public static extern Status voxide_audio_write_wav(AudioHandle audio, byte[] path);
        [DllImport(Lib)] public static extern void voxide_audio_free(IntPtr audio);
        [DllImport(Lib)] public static extern UIntPtr voxide_audio_word_count(AudioHandle audio);
        [DllImport(Lib)] public static extern Status voxide_audio_word(AudioHandle audio, UIntPtr index, out WordNative word);
        [DllImport(Lib)] public static extern UIntPtr voxide_audio_mark_count(AudioHandle audio);
        [DllImport(Lib)] public static extern Status voxide_audio_mark(AudioHandle audio, UIntPtr index, out IntPtr name, out UIntPtr sample);
        [DllImport(Lib)] public static extern Status voxide_audio_write_timestamps(AudioHandle audio, byte[] path);
        [DllImport(Lib)] public static extern Status voxide_audio_write_subtitles(AudioHandle audio, byte[] path, byte[] source);
        [DllImport(Lib)] public static extern Status voxide_engine_speaker_id(EngineHandle engine, byte[] voice, byte[] name, out long id);
        [DllImport(Lib)] public static extern Status voxide_engine_speak_events(EngineHandle engine, byte[] text, byte[] voice,
            ref SpeakOptionsNative options, IntPtr permit, EventCallback callback, IntPtr userData);
        [DllImport(Lib)] public static extern IntPtr voxide_last_error();
        [DllImport(Lib)] public static extern IntPtr voxide_status_name(Status status);
        [DllImport(Lib)] public static extern IntPtr voxide_version();

        /// <summary>NUL-terminated UTF-8 (null stays null: the C API's "default").</summary>
        public static byte[] Utf8z(string s)
        {
            if (s == null) return null;
            byte[] b = new byte[Encoding.UTF8.GetByteCount(s) + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        public static string FromUtf8z(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            int n = 0;
            while (Marshal.ReadByte(p, n) != 0) n++;
            byte[] b = new byte[n];
            Marshal.Copy(p, b, 0, n);
            return Encoding.UTF8.GetString(b);
        }

        public static string StatusName(Status s) { return FromUtf8z(voxide_status_name(s)); }

        /// <summary>The structs above have the header's layout: the option structs the size
        /// the library's defaults say (struct_size), the word and event structs the header's
        /// (5 and 10 pointer-sized fields). Throws InvalidOperationException otherwise.</summary>
        public static void CheckLayout()
        {
            int p = IntPtr.Size;
            Expect("VoxideEngineOptions", Marshal.SizeOf(typeof(EngineOptionsNative)),
                   (int)voxide_engine_options_default().struct_size.ToUInt64());
            Expect("VoxideSpeakOptions", Marshal.SizeOf(typeof(SpeakOptionsNative)),
                   (int)voxide_speak_options_default().struct_size.ToUInt64());
            Expect("VoxideWord", Marshal.SizeOf(typeof(WordNative)), 5 * p);
            Expect("VoxideEvent", Marshal.SizeOf(typeof(EventNative)), 10 * p);
            Expect("VoxideEvent.word", (int)Marshal.OffsetOf(typeof(EventNative), "word"), 3 * p);
        }

        static void Expect(string what, int got, int want)
        {
            if (got != want)
                throw new InvalidOperationException("Voxide.cs: " + what + " is " + got + " bytes here, " + want + " in voxide.h");
        }

        /// <summary>Throw on failure. Call on the thread that made the call (the message is thread-local).</summary>
        public static void Check(Status s)
        {
            if (s != Status.Ok) throw new VoxideException(s, FromUtf8z(voxide_last_error()));
        }
    }

    /// <summary>Per-request options; negative scales mean the voice's defaults.</summary>
    public sealed class SpeakOptions
    {
        internal SpeakOptionsNative Raw = Native.voxide_speak_options_default();
        public Input Input { get { return (Input)Raw.input; } set { Raw.input = (int)value; } }
        public float NoiseScale { get { return Raw.noise_scale; } set { Raw.noise_scale = value; } }
        public float LengthScale { get { return Raw.length_scale; } set { Raw.length_scale = value; } }
        public float NoiseW { get { return Raw.noise_w; } set { Raw.noise_w = value; } }
        public ulong Seed { get { return Raw.seed; } set { Raw.seed = value; } }
        /// <summary>Speaker of a multi-speaker voice (see Engine.SpeakerId); negative: the voice's default.</summary>
        public long Speaker { get { return Raw.speaker_id; } set { Raw.speaker_id = value; } }
        /// <summary>Speaking speed, 0.25 to 4 (2: twice as fast); 0: normal.</summary>
        public float Speed { get { return Raw.speed; } set { Raw.speed = value; } }
    }

    /// <summary>The right to run one request; consumed by Speak, given back by Dispose.</summary>
    public sealed class Permit : IDisposable
    {
        internal readonly PermitHandle Handle;
        internal Permit(PermitHandle h) { Handle = h; }
        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>Synthesized audio (owns the samples).</summary>
    public sealed class Audio : IDisposable
    {
        readonly AudioHandle handle;
        internal Audio(AudioHandle h) { handle = h; }
        public int Length { get { return (int)Native.voxide_audio_len(handle).ToUInt64(); } }
        public int SampleRate { get { return (int)Native.voxide_audio_sample_rate(handle); } }
        public double Duration { get { return SampleRate == 0 ? 0 : (double)Length / SampleRate; } }
        /// <summary>A copy of the float samples.</summary>
        public float[] Samples()
        {
            float[] s = new float[Length];
            if (s.Length > 0) Marshal.Copy(Native.voxide_audio_samples(handle), s, 0, s.Length);
            // Lifetime rule: the samples belong to the native audio, which the
            // handle's finalizer frees; keep it reachable until the copy is done.
            GC.KeepAlive(handle);
            return s;
        }
        public void WriteWav(string path) { Native.Check(Native.voxide_audio_write_wav(handle, Native.Utf8z(path))); }

        /// <summary>The input words with their sample ranges, in input order (none for ids input).</summary>
        public Word[] Words()
        {
            var words = new Word[(int)Native.voxide_audio_word_count(handle).ToUInt64()];
            for (int i = 0; i < words.Length; i++)
            {
                WordNative w;
                Native.Check(Native.voxide_audio_word(handle, (UIntPtr)(ulong)i, out w));
                words[i] = new Word(w); // copies the text while the audio is alive
            }
            GC.KeepAlive(handle);
            return words;
        }

        /// <summary>The SSML marks reached, in order.</summary>
        public Mark[] Marks()
        {
            var marks = new Mark[(int)Native.voxide_audio_mark_count(handle).ToUInt64()];
            for (int i = 0; i < marks.Length; i++)
            {
                IntPtr name;
                UIntPtr sample;
                Native.Check(Native.voxide_audio_mark(handle, (UIntPtr)(ulong)i, out name, out sample));
                marks[i] = new Mark(Native.FromUtf8z(name), (long)sample.ToUInt64());
            }
            GC.KeepAlive(handle);
            return marks;
        }

        /// <summary>Write the words and marks as JSON.</summary>
        public void WriteTimestamps(string path)
        {
            Native.Check(Native.voxide_audio_write_timestamps(handle, Native.Utf8z(path)));
        }

        /// <summary>Write captions: WebVTT when path ends in .vtt, else SRT. Cues show source, the
        /// plain text that was spoken, with its punctuation (null: the words).</summary>
        public void WriteSubtitles(string path, string source = null)
        {
            Native.Check(Native.voxide_audio_write_subtitles(handle, Native.Utf8z(path), Native.Utf8z(source)));
        }
        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A loaded engine. Thread-safe.</summary>
    public sealed class Engine : IDisposable
    {
        readonly EngineHandle handle;

        public static string Version { get { return Native.FromUtf8z(Native.voxide_version()); } }

        public Engine(string voicePath, uint maxConcurrent = 2, Device device = Device.Auto, uint threads = 0)
        {
            Native.CheckLayout();
            EngineOptionsNative o = Native.voxide_engine_options_default();
            byte[] path = Native.Utf8z(voicePath);
            GCHandle pin = GCHandle.Alloc(path, GCHandleType.Pinned);
            try
            {
                o.voice_path = pin.AddrOfPinnedObject();
                o.max_concurrent = maxConcurrent;
                o.device = (int)device;
                o.threads = threads;
                Native.Check(Native.voxide_engine_create_with(ref o, out handle));
            }
            finally { pin.Free(); }
        }

        public string DeviceName { get { return Native.FromUtf8z(Native.voxide_engine_device_name(handle)); } }

        public int SampleRate(string voice = null)
        {
            uint rate;
            Native.Check(Native.voxide_engine_sample_rate(handle, Native.Utf8z(voice), out rate));
            return (int)rate;
        }

        public void AddVoice(string name, string voicePath)
        {
            Native.Check(Native.voxide_engine_add_voice(handle, Native.Utf8z(name), Native.Utf8z(voicePath)));
        }

        /// <summary>Wait for a permit (timeoutMs: 0 no wait, uint.MaxValue forever); throws Status.Timeout.</summary>
        public Permit AcquirePermit(uint timeoutMs = uint.MaxValue)
        {
            PermitHandle p;
            Native.Check(Native.voxide_engine_acquire_permit(handle, timeoutMs, out p));
            return new Permit(p);
        }

        /// <summary>Speak with a permit (consumed, also on failure); voice null: the default.</summary>
        public Audio Speak(string text, Permit permit, SpeakOptions options = null, string voice = null)
        {
            SpeakOptionsNative o = (options ?? new SpeakOptions()).Raw;
            AudioHandle a;
            Status s = Native.voxide_engine_speak_with(handle, Native.Utf8z(text), Native.Utf8z(voice), ref o,
                                                       permit.Handle.Consume(), out a);
            Native.Check(s);
            return new Audio(a);
        }

        /// <summary>Wait for a permit, then speak.</summary>
        public Audio Speak(string text, SpeakOptions options = null, string voice = null)
        {
            return Speak(text, AcquirePermit(), options, voice);
        }

        /// <summary>Stream chunks to onChunk (return false to cancel: Status.Cancelled). An exception
        /// thrown by onChunk cancels the request and is rethrown here.</summary>
        public void SpeakStream(string text, Func<float[], bool> onChunk, SpeakOptions options = null, string voice = null)
        {
            SpeakOptionsNative o = (options ?? new SpeakOptions()).Raw;
            Exception error = null;
            ChunkCallback cb = (samples, len, userData) =>
            {
                try
                {
                    float[] chunk = new float[(int)len.ToUInt64()];
                    Marshal.Copy(samples, chunk, 0, chunk.Length);
                    return onChunk(chunk);
                }
                catch (Exception e) { error = e; return false; } // never unwind into C
            };
            Permit permit = AcquirePermit();
            Status s = Native.voxide_engine_speak_stream(handle, Native.Utf8z(text), Native.Utf8z(voice), ref o,
                                                         permit.Handle.Consume(), cb, IntPtr.Zero);
            // Lifetime rule: the marshalled function pointer that C calls lives
            // only as long as the delegate. The JIT may consider cb dead right
            // after it was passed, and a GC during the stream would then collect
            // it and the next chunk would call freed memory. KeepAlive after the
            // call keeps it reachable until the stream has returned; voxide never
            // keeps the callback after voxide_engine_speak_stream returns, so
            // nothing longer-lived (GCHandle) is needed.
            GC.KeepAlive(cb);
            if (error != null) throw error;
            Native.Check(s);
        }

        /// <summary>The id of speaker name (a name of the voice's speaker_id_map, or a number in
        /// range) of voice (null: the default), for SpeakOptions.Speaker; Status.InvalidArgument
        /// when there is no such speaker.</summary>
        public long SpeakerId(string name, string voice = null)
        {
            long id;
            Native.Check(Native.voxide_engine_speaker_id(handle, Native.Utf8z(voice), Native.Utf8z(name), out id));
            return id;
        }

        /// <summary>Speak with every event, in order: audio chunks, each input word once its audio
        /// has been delivered, SSML marks, sentence ends. onEvent returns false to cancel
        /// (Status.Cancelled); an exception thrown by it cancels and is rethrown here.</summary>
        public void SpeakEvents(string text, Func<Event, bool> onEvent, SpeakOptions options = null, string voice = null)
        {
            SpeakOptionsNative o = (options ?? new SpeakOptions()).Raw;
            Exception error = null;
            EventCallback cb = (ev, userData) =>
            {
                try
                {
                    var n = (EventNative)Marshal.PtrToStructure(ev, typeof(EventNative));
                    var e = new Event { Kind = (EventKind)n.kind };
                    if (e.Kind == EventKind.Audio)
                    {
                        e.Samples = new float[(int)n.len.ToUInt64()];
                        Marshal.Copy(n.samples, e.Samples, 0, e.Samples.Length);
                    }
                    else if (e.Kind == EventKind.Word) e.Word = new Word(n.word);
                    else if (e.Kind == EventKind.Mark) e.Mark = new Mark(Native.FromUtf8z(n.mark_name), (long)n.mark_sample.ToUInt64());
                    return onEvent(e);
                }
                catch (Exception e) { error = e; return false; } // never unwind into C
            };
            Permit permit = AcquirePermit();
            Status s = Native.voxide_engine_speak_events(handle, Native.Utf8z(text), Native.Utf8z(voice), ref o,
                                                         permit.Handle.Consume(), cb, IntPtr.Zero);
            GC.KeepAlive(cb); // as in SpeakStream
            if (error != null) throw error;
            Native.Check(s);
        }

        /// <summary>Stream the audio into a 16-bit mono WAV stream (seekable, to patch the sizes).</summary>
        public void SpeakStreamWav(string text, Stream output, SpeakOptions options = null)
        {
            int rate = SampleRate();
            var w = new BinaryWriter(output, Encoding.ASCII, true);
            long start = output.Position;
            WriteWavHeader(w, rate, 0);
            int total = 0;
            SpeakStream(text, chunk =>
            {
                foreach (float x in chunk) w.Write((short)(Math.Max(-1f, Math.Min(1f, x)) * 32767f));
                total += chunk.Length;
                return true;
            }, options);
            output.Position = start;
            WriteWavHeader(w, rate, total);
            w.Flush();
        }

        static void WriteWavHeader(BinaryWriter w, int rate, int samples)
        {
            w.Write(Encoding.ASCII.GetBytes("RIFF")); w.Write(36 + 2 * samples);
            w.Write(Encoding.ASCII.GetBytes("WAVEfmt ")); w.Write(16); w.Write((short)1); w.Write((short)1);
            w.Write(rate); w.Write(2 * rate); w.Write((short)2); w.Write((short)16);
            w.Write(Encoding.ASCII.GetBytes("data")); w.Write(2 * samples);
        }

        public void Dispose() { handle.Dispose(); }
    }
}
