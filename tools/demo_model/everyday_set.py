#!/usr/bin/env python3
"""Everyday sentences outside the demo model's 400-word vocabularies, spoken by espeak-ng.

What the demo model's held-out WER does NOT measure: ordinary speech with ordinary words. Writes
OUT/everyday.jsonl (NeMo manifest: audio_filepath, text, lang) and the WAVs; then

    python -m tools.demo_model.everyday_set --out /tmp/everyday
    onepass eval --manifest /tmp/everyday/everyday.jsonl --model demo --chunk-ms 1120 --json
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

SENTENCES = {
    "en": ("en-us", [
        "Could you pick up some milk and bread on your way home tonight?",
        "The meeting has been moved to Thursday afternoon at three o'clock.",
        "My sister is flying to Chicago next week to visit her friends.",
        "Please remember to turn off the lights before you leave the office.",
        "We watched a funny movie about a dog who wanted to become a chef.",
        "The train was delayed because of heavy snow in the mountains.",
        "I think the restaurant on the corner serves the best pizza in town.",
        "Can you send me the report by the end of the day?",
        "The children played soccer in the park until it got dark.",
        "Our neighbors are painting their house a bright shade of yellow.",
    ]),
    "es": ("es", [
        "¿Puedes comprar pan y leche cuando vuelvas a casa esta noche?",
        "La reunión se ha cambiado al jueves por la tarde a las tres.",
        "Mi hermana viaja a Barcelona la próxima semana para ver a sus amigos.",
        "Por favor, apaga las luces antes de salir de la oficina.",
        "Vimos una película divertida sobre un perro que quería ser cocinero.",
        "El tren llegó tarde por culpa de la nieve en las montañas.",
        "Creo que el restaurante de la esquina tiene la mejor pizza de la ciudad.",
        "¿Me puedes enviar el informe antes de que termine el día?",
        "Los niños jugaron al fútbol en el parque hasta que oscureció.",
        "Nuestros vecinos están pintando su casa de un amarillo muy brillante.",
    ]),
    "de": ("de", [
        "Kannst du heute Abend auf dem Heimweg Milch und Brot kaufen?",
        "Die Besprechung wurde auf Donnerstagnachmittag um drei Uhr verschoben.",
        "Meine Schwester fliegt nächste Woche nach Hamburg, um ihre Freunde zu besuchen.",
        "Bitte denk daran, das Licht auszuschalten, bevor du das Büro verlässt.",
        "Wir haben einen lustigen Film über einen Hund gesehen, der Koch werden wollte.",
        "Der Zug hatte wegen des starken Schneefalls in den Bergen Verspätung.",
        "Ich glaube, das Restaurant an der Ecke hat die beste Pizza der Stadt.",
        "Kannst du mir den Bericht bis zum Ende des Tages schicken?",
        "Die Kinder spielten im Park Fußball, bis es dunkel wurde.",
        "Unsere Nachbarn streichen ihr Haus in einem hellen Gelb.",
    ]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for lang, (voice, sentences) in SENTENCES.items():
        for i, text in enumerate(sentences):
            wav = out / f"{lang}_{i:02d}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
            lines.append(json.dumps({"audio_filepath": str(wav), "text": text, "lang": lang}, ensure_ascii=False))
    (out / "everyday.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} clips -> {out / 'everyday.jsonl'}")


if __name__ == "__main__":
    main()
